#!/usr/bin/env bash
# Benchmark: `cinematch load` into PostgreSQL (spec indexes present) side by
# side with `psql \copy` of the same rows into the same table on the same
# server, and the same load into SQLite (issue 2: ratio <= 1.2).
#
#   scripts/bench/load.sh [RATINGS=1000000 | DIR] [ROUNDS=3]
#
# A number generates that many synthetic ratings (`cinematch data synth`);
# a directory loads that MovieLens release instead (e.g.
# ../shared/data/ml-latest-small). Runs as root or not: the throwaway
# cluster (scripts/pg-cluster.sh, default durability: fsync on) is started
# and removed by the script.
#
# What each side does, timed from process start to exit:
#   \copy ratings       psql \copy of exactly the rows CineMatch stores
#                       (userid, movieid, rating, timestamp, data_split) from
#                       CSV into a freshly migrated schema: the four rating
#                       indexes are maintained during the copy, `loaded_at`
#                       is filled by its column default. The split labels
#                       are precomputed in the file. This is the bar's
#                       reference.
#   \copy both          the same plus the movies rows (title, genres and the
#                       PCA JSON precomputed) in one transaction, i.e. every
#                       row `cinematch load` writes; for information.
#   cinematch load      reads and validates the MovieLens files, splits,
#                       fits the genre PCA, then binary COPY of movies and
#                       ratings in one transaction (same schema, same
#                       indexes, `loaded_at` by the same default).
# Each timed run gets its own fresh database and a CHECKPOINT just before it,
# and the order of the three PostgreSQL runs rotates between rounds, so no
# run pays for another's dirty buffers.
set -euo pipefail
cd "$(dirname "$0")/../.."
ARG=${1:-1000000}
ROUNDS=${2:-3}
source scripts/pg-cluster.sh
WORK=$(mktemp -d /tmp/cinematch-bench.XXXXXX)
trap 'pg_cluster_stop_all; rm -rf "$WORK"' EXIT

cargo build --release --quiet --bin cinematch
BIN=$PWD/target/release/cinematch

if [ -d "$ARG" ]; then
  DATA=$(cd "$ARG" && pwd)
  LABEL=$(basename "$DATA")
else
  N=$ARG
  echo "generating $N synthetic ratings"
  "$BIN" -q data synth --out "$WORK/data" --ratings "$N" --users $((N / 150 + 10)) --movies 20000 >/dev/null
  DATA=$WORK/data
  LABEL="$N synthetic ratings"
fi

pg_cluster_start bench
URL=$PG_URL_bench
db() { echo "${URL%/*}/$1"; }
export PGOPTIONS="-c client_min_messages=warning"
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
echo "PostgreSQL $(psql -X -At "$URL" -c 'SHOW server_version'), cluster $URL"

# The rows \copy gets are exactly what cinematch stores: same ids, ratings,
# timestamps, split labels, titles, genres and PCA features. Export them once
# from a cinematch load.
"${PSQL[@]}" "$URL" -c "CREATE DATABASE prep"
"$BIN" -q --db "$(db prep)" load "$DATA" >/dev/null
"${PSQL[@]}" "$(db prep)" \
  -c "\\copy (SELECT userid, movieid, rating, timestamp, data_split FROM ratings) TO '$WORK/ratings.csv' CSV" \
  -c "\\copy (SELECT movieid, title, genres, pca_features FROM movies) TO '$WORK/movies.csv' CSV"
ROWS=$(wc -l <"$WORK/ratings.csv")
MOVIES=$(wc -l <"$WORK/movies.csv")
"${PSQL[@]}" "$URL" -c "DROP DATABASE prep"

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# A fresh, migrated (schema + spec indexes), checkpointed database.
fresh_db() {
  "${PSQL[@]}" "$URL" -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1"
  "$BIN" -q --db "$(db "$1")" db migrate >/dev/null
  "${PSQL[@]}" "$URL" -c "CHECKPOINT"
}

run_copy() {
  fresh_db c
  local t0 t1
  t0=$(now)
  "${PSQL[@]}" "$(db c)" -c "\\copy ratings (userid, movieid, rating, timestamp, data_split) FROM '$WORK/ratings.csv' CSV"
  t1=$(now)
  copy_times+=("$(awk "BEGIN{print $t1 - $t0}")")
  "${PSQL[@]}" "$URL" -c "DROP DATABASE c"
}

run_copy_both() {
  fresh_db b
  local t0 t1
  t0=$(now)
  "${PSQL[@]}" -1 "$(db b)" \
    -c "\\copy movies (movieid, title, genres, pca_features) FROM '$WORK/movies.csv' CSV" \
    -c "\\copy ratings (userid, movieid, rating, timestamp, data_split) FROM '$WORK/ratings.csv' CSV"
  t1=$(now)
  both_times+=("$(awk "BEGIN{print $t1 - $t0}")")
  "${PSQL[@]}" "$URL" -c "DROP DATABASE b"
}

run_load() {
  fresh_db l
  local t0 t1 out
  t0=$(now)
  out=$("$BIN" -q --db "$(db l)" load "$DATA")
  t1=$(now)
  load_times+=("$(awk "BEGIN{print $t1 - $t0}")")
  # "read and validated in 1.23s, written in 4.56s"
  read_times+=("$(sed -n 's/^read and validated in \([0-9.]*\)s.*/\1/p' <<<"$out")")
  write_times+=("$(sed -n 's/.*, written in \([0-9.]*\)s.*/\1/p' <<<"$out")")
  local n
  n=$("${PSQL[@]}" -At "$(db l)" -c "SELECT COUNT(*) FROM ratings")
  [ "$n" -eq "$ROWS" ] || { echo "error: cinematch stored $n ratings, \\copy $ROWS" >&2; exit 1; }
  "${PSQL[@]}" "$URL" -c "DROP DATABASE l"
}

run_sqlite() {
  rm -f "$WORK"/s.db*
  local t0 t1
  t0=$(now)
  "$BIN" -q --db "sqlite://$WORK/s.db" load "$DATA" >/dev/null
  t1=$(now)
  sqlite_times+=("$(awk "BEGIN{print $t1 - $t0}")")
  rm -f "$WORK"/s.db*
}

echo "benchmark: $LABEL ($ROWS ratings, $MOVIES movies), $ROUNDS rounds"
copy_times=(); both_times=(); load_times=(); read_times=(); write_times=(); sqlite_times=(); ratios=()
order=(run_copy run_load run_copy_both)
for round in $(seq 1 "$ROUNDS"); do
  for k in 0 1 2; do
    "${order[(k + round - 1) % 3]}"
  done
  run_sqlite
  ratios+=("$(awk "BEGIN{print ${load_times[-1]} / ${copy_times[-1]}}")")
  printf 'round %d: \\copy ratings %.2fs  \\copy both %.2fs  cinematch->PostgreSQL %.2fs (read %.2fs, write %.2fs)  cinematch->SQLite %.2fs  ratio %.2f\n' \
    "$round" "${copy_times[-1]}" "${both_times[-1]}" "${load_times[-1]}" \
    "${read_times[-1]}" "${write_times[-1]}" "${sqlite_times[-1]}" "${ratios[-1]}"
done
c=$(printf '%s\n' "${copy_times[@]}" | median)
b=$(printf '%s\n' "${both_times[@]}" | median)
l=$(printf '%s\n' "${load_times[@]}" | median)
r=$(printf '%s\n' "${read_times[@]}" | median)
w=$(printf '%s\n' "${write_times[@]}" | median)
s=$(printf '%s\n' "${sqlite_times[@]}" | median)
printf '\nmedian of %d rounds, %s:\n' "$ROUNDS" "$LABEL"
printf '  psql \\copy ratings (reference)        %7.2fs   (CSV rows, split precomputed, indexes maintained)\n' "$c"
printf '  psql \\copy movies + ratings           %7.2fs   (every row cinematch writes, PCA precomputed)\n' "$b"
printf '  cinematch load -> PostgreSQL          %7.2fs   (read+validate+split+PCA %.2fs, binary COPY %.2fs)\n' "$l" "$r" "$w"
printf '  cinematch load -> SQLite              %7.2fs\n' "$s"
printf '  ratio cinematch / \\copy ratings       %7.2f   (bar: <= 1.20)\n' "$(awk "BEGIN{print $l / $c}")"
printf '  ratio cinematch / \\copy both          %7.2f\n' "$(awk "BEGIN{print $l / $b}")"
printf '  median of the per-round ratios        %7.2f   (rounds: %s)\n' \
  "$(printf '%s\n' "${ratios[@]}" | median)" "$(printf '%.2f ' "${ratios[@]}")"
