#!/usr/bin/env bash
# Benchmark: the recommendation endpoint under load (issues 5, 9, 12).
#
#   scripts/bench/serve.sh [DURATION=30] [CONNECTIONS=32]
#
# Scenarios, each on its own throwaway SQLite database:
#
#   small ranking    ../shared/data/ml-latest-small, `train` with the
#                    defaults (the ranking champion, ease). Bar (issue 9):
#                    >= 20,000 requests/s with p99 < 5 ms, no errors. A
#                    returning user's list is kept per model version
#                    (src/recommend/cache.rs), so after the warm-up this
#                    measures answers from that cache.
#   small fold-in    the same server after a batch of FOLDIN_USERS (300)
#                    brand-new users with 5 to 200 ratings each was ingested
#                    into ratings_buffer: every request is for one of them,
#                    so every list is folded in at request time (never
#                    cached). Bar
#                    (issue 12): >= 5,000 requests/s with p99 < 10 ms.
#   hot reload       a new champion promoted by another process under load.
#   synthetic        `data synth --movies 62000 --ratings SYNTH_RATINGS
#                    --users SYNTH_USERS` (default 1,000,000 ratings and
#                    6,000 users; SYNTH_RATINGS=25000000 SYNTH_USERS=162000
#                    for the ml-25m-sized catalogue of the issues' bars),
#                    `train --algo ials` (defaults, 128 factors), with its
#                    wall time and peak memory; then the model scenario
#                    (bar, issue 9: p99 < 20 ms), the same with every list
#                    computed on request (`--precompute-k 0
#                    --list-cache-items 0`: what a request costs when its
#                    list is not held; no bar) and the fold-in scenario
#                    (bar, issue 12: p99 < 30 ms) on that catalogue.
#                    SYNTH_DB=FILE reuses a synthetic store already loaded
#                    and trained (skips the synth, load and train steps).
#
# For each: start `cinematch serve` on a free loopback port, wait for
# /readyz and for the server to precompute its users' lists (the
# `cinematch_lists_precompute_remaining` gauge at 0; the time is printed),
# check one answer's strategy (model or fold-in), warm up for 5 s,
# then run `wrk -t WRK_THREADS (2) -c CONNECTIONS` for DURATION seconds
# against GET /api/users/{id}/recommendations?k=10, every request for a
# user drawn at random from the scenario's users. A Lua `done` hook reports
# requests/s, p50, p90, p99, max, non-2xx responses and socket errors; the
# server's own CPU time per request comes from /proc. wrk and the server
# share the machine's cores (2 on CI), so the figures include wrk's CPU
# competing with the server.
#
# Needs wrk (Debian's package, installed with apt-get when missing and run as
# root; otherwise an error says so), curl, and python3 (the users, the
# fold-in batch, peak memory). Environment: SERVE_BENCH_STRICT=1 exits 1
# when a bar is missed.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-30}
CONNECTIONS=${2:-32}
WRK_THREADS=${WRK_THREADS:-2}
# Seconds a server may take to load before it is declared stuck (a
# 25M-rating store takes minutes to read).
READY_SECS=${READY_SECS:-600}
FOLDIN_USERS=${FOLDIN_USERS:-300}
SYNTH_RATINGS=${SYNTH_RATINGS:-1000000}
SYNTH_USERS=${SYNTH_USERS:-6000}
WARMUP=5
ROOT=$PWD
DATA=$ROOT/../shared/data/ml-latest-small

need_wrk() {
  command -v wrk >/dev/null && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing wrk with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null; }
  fi
  command -v wrk >/dev/null || {
    echo "error: wrk is not installed; install it (Debian: apt-get install wrk, as root) and run again" >&2
    exit 1
  }
}
need_wrk
command -v curl >/dev/null || { echo "error: curl is needed to probe /readyz" >&2; exit 1; }
command -v python3 >/dev/null || { echo "error: python3 is needed (users, fold-in batch, peak memory)" >&2; exit 1; }
[ -d "$DATA" ] || { echo "error: $DATA is missing (the shared MovieLens data)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/cinematch-serve-bench.XXXXXX)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "building the release binary"
cargo build --release --quiet --bin cinematch
BIN=$ROOT/target/release/cinematch

# query DB SQL: one value a line (sqlite3, else Python's sqlite3 module).
query() {
  if command -v sqlite3 >/dev/null; then
    sqlite3 "$1" "$2"
  elif command -v python3 >/dev/null; then
    python3 -c 'import sqlite3, sys
for (v,) in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]): print(v)' "$1" "$2"
  else
    echo "error: sqlite3 or python3 is needed to read the benchmark database" >&2
    exit 1
  fi
}

# A loopback port nothing listens on.
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  echo "error: no free loopback port found" >&2
  exit 1
}

cat >"$WORK/random_user.lua" <<'LUA'
-- One random known user per request; the summary as one parsable line.
local ids = {}
for line in io.lines(os.getenv("BENCH_USERS")) do ids[#ids + 1] = line end
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/api/users/" .. ids[math.random(#ids)] .. "/recommendations?k=10")
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d seconds=%.2f rps=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, e.status, e.connect + e.read + e.write + e.timeout))
end
LUA

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

SUMMARY=()
FAILED=0
# Extra `serve` arguments of the next run.
SERVE_ARGS=()

# foldin_batch DB USERS_OUT: ingests FOLDIN_USERS brand-new users (ids above
# every known one) with 5 to 200 ratings each, movies drawn by popularity,
# into ratings_buffer; writes their ids to USERS_OUT.
foldin_batch() {
  local db=$1 out=$2
  python3 - "$db" "$WORK/foldin.csv" "$out" "$FOLDIN_USERS" <<'PY'
import random, sqlite3, sys
db, csv_out, users_out, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
con = sqlite3.connect(db)
top = con.execute("SELECT MAX(userId) FROM ratings").fetchone()[0]
movies, counts = zip(*con.execute(
    "SELECT movieId, COUNT(*) FROM ratings GROUP BY movieId ORDER BY movieId"))
rng = random.Random(7)
with open(csv_out, "w") as f, open(users_out, "w") as u:
    f.write("userId,movieId,rating,timestamp\n")
    for i in range(n):
        user = top + 1 + i
        u.write(f"{user}\n")
        picked = set()
        want = rng.randint(5, 200)
        while len(picked) < want:
            picked.update(rng.choices(movies, weights=counts, k=want - len(picked)))
        for m in sorted(picked):
            f.write(f"{user},{m},{rng.randint(1, 10) / 2},{2_000_000_000 + i}\n")
PY
  "$BIN" -q --db "sqlite://$db" ingest --batch-id bench_foldin "$WORK/foldin.csv" >/dev/null
}

# timed COMMAND...: runs it, then prints its wall seconds and peak memory.
timed() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.time()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
print(f"{time.time() - t:.1f} s, peak memory {peak / 2**20:.2f} GiB")
PY
}

# run NAME DB_FILE MIN_RPS MAX_P99_MS [STRATEGY=model USERS_FILE]
# Without USERS_FILE, the users the model knows (train-split ratings).
# MIN_RPS 0: no throughput bar; MAX_P99_MS 0: no latency bar.
run() {
  local name=$1 db=$2 min_rps=$3 max_p99=$4 strategy=${5:-model} users_file=${6:-}
  if [ -n "$users_file" ]; then
    cp "$users_file" "$WORK/users.txt"
  else
    query "$db" "SELECT DISTINCT userId FROM ratings WHERE data_split = 'train' ORDER BY 1" >"$WORK/users.txt"
  fi
  local users movies port
  users=$(wc -l <"$WORK/users.txt")
  movies=$(query "$db" "SELECT COUNT(DISTINCT movieId) FROM ratings WHERE data_split = 'train'")
  port=$(free_port)
  CINEMATCH_LOG=warn "$BIN" -q --db "sqlite://$db" serve --addr "127.0.0.1:$port" ${SERVE_ARGS[@]+"${SERVE_ARGS[@]}"} \
    >"$WORK/serve.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq $((READY_SECS * 10))); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/serve.log" >&2; echo "error: the server exited" >&2; exit 1; }
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { echo "error: the server never became ready" >&2; exit 1; }
  local ready_at precomputed=
  ready_at=$(date +%s.%N)
  for _ in $(seq $((READY_SECS * 10))); do
    if curl -sf "http://127.0.0.1:$port/metrics" | grep -q '^cinematch_lists_precompute_remaining 0$'; then
      precomputed=$(awk -v a="$(date +%s.%N)" -v b="$ready_at" 'BEGIN { printf "%.1f", a - b }')
      break
    fi
    sleep 0.1
  done
  [ -n "$precomputed" ] || { echo "error: the server never finished precomputing lists" >&2; exit 1; }
  local cached
  cached=$(curl -sf "http://127.0.0.1:$port/metrics" | sed -n 's/^cinematch_lists_cached //p')
  local sample
  sample=$(curl -sf "http://127.0.0.1:$port/api/users/$(head -1 "$WORK/users.txt")/recommendations?k=10")
  grep -q "\"strategy\":\"$strategy\"" <<<"$sample" || { echo "error: not a $strategy answer: $sample" >&2; exit 1; }
  local cmd=(wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -s "$WORK/random_user.lua" "http://127.0.0.1:$port")
  echo
  echo "== $name: $strategy lists for $users users, $movies movies, server pid $SERVER_PID on 127.0.0.1:$port"
  if [ "$cached" = 0 ]; then
    echo "   serve ${SERVE_ARGS[*]:-(defaults)}: no list held, each computed on request"
  else
    echo "   serve ${SERVE_ARGS[*]:-(defaults)}: lists of $cached users precomputed ${precomputed} s after /readyz"
  fi
  echo "   warm-up ${WARMUP}s, then: BENCH_USERS=users.txt ${cmd[*]/#$WORK\//}"
  BENCH_USERS=$WORK/users.txt wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -s "$WORK/random_user.lua" \
    "http://127.0.0.1:$port" >/dev/null
  echo "   load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
  local t0 t1 out result
  t0=$(cpu_ticks "$SERVER_PID")
  out=$(BENCH_USERS=$WORK/users.txt "${cmd[@]}")
  t1=$(cpu_ticks "$SERVER_PID")
  result=$(grep '^RESULT' <<<"$out")
  kill "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
  local rps p50 p99 non2xx sockerr requests cpu_us verdict
  rps=$(field rps "$result")
  p50=$(field p50_ms "$result")
  p99=$(field p99_ms "$result")
  non2xx=$(field non2xx "$result")
  sockerr=$(field socket_errors "$result")
  requests=$(field requests "$result")
  cpu_us=$(awk -v t=$((t1 - t0)) -v n="$requests" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", t / hz / n * 1e6 }')
  echo "   $result"
  echo "   server CPU: ${cpu_us} us per request"
  verdict=pass
  if [ "$min_rps" -gt 0 ] && awk -v a="$rps" -v b="$min_rps" 'BEGIN { exit !(a < b) }'; then verdict=FAIL; fi
  if [ "$max_p99" != 0 ] && awk -v a="$p99" -v b="$max_p99" 'BEGIN { exit !(a >= b) }'; then verdict=FAIL; fi
  if [ "$non2xx" != 0 ] || [ "$sockerr" != 0 ]; then verdict=FAIL; fi
  [ "$verdict" = pass ] || FAILED=1
  local bar="p99 < ${max_p99} ms, no errors"
  [ "$max_p99" = 0 ] && bar="no errors (p99: no bar)"
  [ "$min_rps" -gt 0 ] && bar=">= $min_rps req/s, $bar"
  SUMMARY+=("$(printf '%-20s %9s %9s %9s %8s %8s %7s  %-34s %s' \
    "$name" "$rps" "$p50" "$p99" "$non2xx" "$sockerr" "$cpu_us" "$bar" "$verdict")")
}

echo "== ml-latest-small: load and train with the defaults (the ranking champion)"
"$BIN" -q --db "sqlite://$WORK/small.db" load "$DATA" >/dev/null
"$BIN" -q --db "sqlite://$WORK/small.db" train >/dev/null
run "small ranking" "$WORK/small.db" 20000 5
foldin_batch "$WORK/small.db" "$WORK/foldin_small.txt"
run "small fold-in" "$WORK/small.db" 5000 10 fold-in "$WORK/foldin_small.txt"

# Hot reload (tests/server.rs checks that every request succeeds across a
# promotion; how fast the new champion is served is measured here): with
# `--reload-secs 1`, wrk on the endpoint, another model is promoted by a
# second process; the time until a request is answered by it, and wrk's
# errors over the whole window. Bar: served within 10 s, no errors.
reload_bench() {
  local db=$1 v2 port t0 t1 result reload_s verdict=pass
  query "$db" "SELECT DISTINCT userId FROM ratings WHERE data_split = 'train' ORDER BY 1" >"$WORK/users.txt"
  v2=$("$BIN" -q --db "sqlite://$db" train --algo baseline --no-ranking | sed -n 's/^trained \(run_[^ ]*\).*/\1/p')
  [ -n "$v2" ] || { echo "error: no model version from train" >&2; exit 1; }
  port=$(free_port)
  CINEMATCH_LOG=warn "$BIN" -q --db "sqlite://$db" serve --addr "127.0.0.1:$port" --reload-secs 1 >"$WORK/serve.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq $((READY_SECS * 10))); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
    sleep 0.1
  done
  local url="http://127.0.0.1:$port/api/users/$(head -1 "$WORK/users.txt")/recommendations?k=10"
  BENCH_USERS=$WORK/users.txt wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d8s -s "$WORK/random_user.lua" \
    "http://127.0.0.1:$port" >"$WORK/reload_wrk.txt" &
  local wrk_pid=$!
  sleep 2
  t0=$(date +%s.%N)
  "$BIN" -q --db "sqlite://$db" models promote "$v2" >/dev/null
  until curl -sf "$url" | grep -q "\"modelVersion\":\"$v2\""; do
    if awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { exit !(a - b > 30) }'; then break; fi
    sleep 0.02
  done
  t1=$(date +%s.%N)
  wait "$wrk_pid"
  kill "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
  result=$(grep '^RESULT' "$WORK/reload_wrk.txt")
  reload_s=$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.2f", a - b }')
  awk -v r="$reload_s" 'BEGIN { exit !(r >= 10) }' && verdict=FAIL
  if [ "$(field non2xx "$result")" != 0 ] || [ "$(field socket_errors "$result")" != 0 ]; then verdict=FAIL; fi
  [ "$verdict" = pass ] || FAILED=1
  echo "   promote -> served by $v2 in ${reload_s} s (reload checks every 1 s); under load: $result"
  RELOAD_SUMMARY="hot reload: new champion served ${reload_s} s after the promotion, $(field non2xx "$result") non-2xx, $(field socket_errors "$result") socket errors during the 8 s window (bar: < 10 s, no errors): $verdict"
}
echo
echo "== hot reload on ml-latest-small: promote a new champion under load"
reload_bench "$WORK/small.db"

echo
if [ -n "${SYNTH_DB:-}" ]; then
  echo "== synthetic: the store in $SYNTH_DB (copied; loaded and trained before)"
  cp "$SYNTH_DB" "$WORK/synth.db"
  TRAIN_COST="(not measured: SYNTH_DB reused)"
else
  echo "== synthetic: 62,000 movies, $SYNTH_RATINGS ratings, $SYNTH_USERS users; ials with the defaults"
  "$BIN" -q data synth --out "$WORK/synth" --movies 62000 --ratings "$SYNTH_RATINGS" --users "$SYNTH_USERS" >/dev/null
  "$BIN" -q --db "sqlite://$WORK/synth.db" load "$WORK/synth" >/dev/null
  TRAIN_COST=$(timed "$BIN" -q --db "sqlite://$WORK/synth.db" train --algo ials)
  echo "   train --algo ials (fit, evaluation, storing): $TRAIN_COST"
fi
run "synthetic 62k ials" "$WORK/synth.db" 0 20
SERVE_ARGS=(--precompute-k 0 --list-cache-items 0)
run "62k, nothing held" "$WORK/synth.db" 0 0
SERVE_ARGS=()
foldin_batch "$WORK/synth.db" "$WORK/foldin_synth.txt"
run "synthetic fold-in" "$WORK/synth.db" 0 30 fold-in "$WORK/foldin_synth.txt"

echo "GET /api/users/{random user}/recommendations?k=10, wrk $WRK_THREADS threads, $CONNECTIONS connections, ${DURATION}s"
echo "(wrk and the server share the same $(nproc) cores; $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
printf '%-20s %9s %9s %9s %8s %8s %7s  %-34s %s\n' scenario "req/s" "p50 ms" "p99 ms" non-2xx "sock err" "CPU us" bar verdict
for line in "${SUMMARY[@]}"; do echo "$line"; done
echo "$RELOAD_SUMMARY"
if [ -n "${SYNTH_DB:-}" ]; then
  echo "synthetic: the store in $SYNTH_DB (62,000 movies), reused as trained"
else
  echo "synthetic ($SYNTH_RATINGS ratings, $SYNTH_USERS users, 62,000 movies): train --algo ials took $TRAIN_COST"
fi
if [ "$FAILED" = 1 ] && [ "${SERVE_BENCH_STRICT:-0}" = 1 ]; then
  exit 1
fi
