#!/usr/bin/env bash
# Benchmark: `cinematch load` of N synthetic ratings into PostgreSQL (spec
# indexes present) side by side with `psql \copy` of the same rows into the
# same table on the same server, and the same load into SQLite.
#
#   scripts/bench/load.sh [RATINGS=1000000] [ROUNDS=3]
#
# Prints each run and the ratio of medians (cinematch / \copy). The bar in
# issue 2 is <= 1.2. Uses its own throwaway cluster with default durability.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
ROUNDS=${2:-3}
source scripts/pg-cluster.sh
trap pg_cluster_stop_all EXIT

cargo build --release --quiet
BIN=target/release/cinematch
WORK=$(mktemp -d /tmp/cinematch-bench.XXXXXX)
trap 'pg_cluster_stop_all; rm -rf "$WORK"' EXIT
chmod 755 "$WORK"

echo "generating $N synthetic ratings"
$BIN -q data synth --out "$WORK/data" --ratings "$N" --users $((N / 150 + 10)) --movies 20000 >/dev/null

pg_cluster_start bench
URL=$PG_URL_bench
PSQL=(psql -X -q -v ON_ERROR_STOP=1)

# The rows \copy gets are exactly what cinematch stores: same ids, ratings,
# timestamps and split labels. Export them once from a cinematch load.
"${PSQL[@]}" "$URL" -c "CREATE DATABASE prep"
$BIN -q --db "${URL%/*}/prep" load "$WORK/data" >/dev/null
"${PSQL[@]}" "${URL%/*}/prep" -c "\\copy (SELECT userid, movieid, rating, timestamp, data_split FROM ratings) TO '$WORK/rows.csv' CSV"
chmod 644 "$WORK/rows.csv"

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
copy_times=(); load_times=(); sqlite_times=()
for round in $(seq 1 "$ROUNDS"); do
  # \copy into a freshly migrated schema (indexes present), same server.
  "${PSQL[@]}" "$URL" -c "DROP DATABASE IF EXISTS c" -c "CREATE DATABASE c"
  $BIN -q --db "${URL%/*}/c" db migrate >/dev/null
  "${PSQL[@]}" "${URL%/*}/c" -c "CHECKPOINT"
  t0=$(now)
  "${PSQL[@]}" "${URL%/*}/c" -c "\\copy ratings (userid, movieid, rating, timestamp, data_split) FROM '$WORK/rows.csv' CSV"
  t1=$(now)
  copy_times+=("$(awk "BEGIN{print $t1 - $t0}")")

  "${PSQL[@]}" "$URL" -c "DROP DATABASE IF EXISTS l" -c "CREATE DATABASE l"
  $BIN -q --db "${URL%/*}/l" db migrate >/dev/null
  "${PSQL[@]}" "${URL%/*}/l" -c "CHECKPOINT"
  t0=$(now)
  $BIN -q --db "${URL%/*}/l" load "$WORK/data" >/dev/null
  t1=$(now)
  load_times+=("$(awk "BEGIN{print $t1 - $t0}")")

  rm -f "$WORK/s.db"*
  t0=$(now)
  $BIN -q --db "sqlite://$WORK/s.db" load "$WORK/data" >/dev/null
  t1=$(now)
  sqlite_times+=("$(awk "BEGIN{print $t1 - $t0}")")
  printf 'round %d: psql \\copy %.2fs   cinematch load (PostgreSQL) %.2fs   cinematch load (SQLite) %.2fs\n' \
    "$round" "${copy_times[-1]}" "${load_times[-1]}" "${sqlite_times[-1]}"
done
c=$(printf '%s\n' "${copy_times[@]}" | median)
l=$(printf '%s\n' "${load_times[@]}" | median)
s=$(printf '%s\n' "${sqlite_times[@]}" | median)
printf '\nmedian of %d rounds, %d ratings:\n' "$ROUNDS" "$N"
printf '  psql \\copy (rows only)            %6.2fs\n' "$c"
printf '  cinematch load -> PostgreSQL      %6.2fs   (parse + split + PCA + movies + binary COPY)\n' "$l"
printf '  cinematch load -> SQLite          %6.2fs\n' "$s"
printf '  ratio cinematch/\\copy             %6.2f   (bar: <= 1.20)\n' "$(awk "BEGIN{print $l / $c}")"
