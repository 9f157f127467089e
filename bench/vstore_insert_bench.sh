#!/usr/bin/env bash
# bench/vstore_insert_bench.sh: insert throughput through the durable API — `hearth vstore add`
# (each batch one SQLite transaction, WAL + synchronous=FULL, then the collection's HNSW index
# caught up; M=16, ef_construction=200), random vectors. The rate counts the writes only (the
# CLI reads and checks the JSONL file first). Then query rates on the 128-d collection through
# `hearth vstore query --file` (1,000 queries, k=10, one process; unfiltered, and filtered at
# 1% / 10% / 50% selectivity, which the filtered-search rule sends to the exact path, the exact
# path and the graph). Prints Markdown tables. Usage:
#   BUILD=build ./bench/vstore_insert_bench.sh        (about 30-60 s on 2 cores)
set -eu
H=${H:-./${BUILD:-build}/hearth}
[ -x "$H" ] || { echo "no $H: make BUILD=${BUILD:-build} first" >&2; exit 2; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

gen() { # FILE N DIM SEED
  awk -v n="$2" -v d="$3" -v s="$4" 'BEGIN { srand(s);
    for (i = 0; i < n; i++) {
      printf "{\"id\":\"v%d\",\"embedding\":[", i;
      for (j = 0; j < d; j++) printf "%s%.4f", (j ? "," : ""), rand() * 2 - 1;
      printf "],\"metadata\":{\"i\":%d}}\n", i;
    }
  }' > "$1"
}

echo "| dim | records | batch | records/s | seconds |"
echo "|---:|---:|---:|---:|---:|"
run() { # DIM N BATCH
  local f="$T/d$1_n$2.jsonl"
  [ -f "$f" ] || gen "$f" "$2" "$1" 7
  rm -rf "$T/db"
  "$H" vstore --dir "$T/db" create bench > /dev/null
  local t0 t1 line
  t0=$(date +%s.%N)
  line=$("$H" vstore --dir "$T/db" add bench --file "$f" --batch "$3" 2>&1 >/dev/null)
  t1=$(date +%s.%N)
  rate=$(echo "$line" | sed -n 's/.*(\([0-9]*\) records\/s).*/\1/p')
  printf "| %d | %d | %d | %s | %.1f |\n" "$1" "$2" "$3" "${rate:-?}" "$(echo "$t1 - $t0" | bc)"
}
run 128 2000 1
run 784 10000 100
run 128 20000 100 # last: the query table uses this collection

gen "$T/q.jsonl" 1000 128 99
echo
echo "| query (20k x 128-d, k=10) | path | queries/s |"
echo "|---|---|---:|"
qrun() { # LABEL PATH WHERE
  local t0 t1
  t0=$(date +%s.%N)
  "$H" vstore --dir "$T/db" query bench --file "$T/q.jsonl" -k 10 ${3:+--where "$3"} > "$T/qout"
  t1=$(date +%s.%N)
  [ "$(wc -l < "$T/qout")" = 1000 ] || { echo "query failed" >&2; exit 1; }
  printf "| %s | %s | %.0f |\n" "$1" "$2" "$(echo "1000 / ($t1 - $t0)" | bc -l)"
}
qrun "unfiltered" "graph (ef 64)" ""
qrun "where i < 200 (1%)" "exact" '{"i":{"$lt":200}}'
qrun "where i < 2000 (10%)" "exact" '{"i":{"$lt":2000}}'
qrun "where i < 10000 (50%)" "graph, ef x2" '{"i":{"$lt":10000}}'

