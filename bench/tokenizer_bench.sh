#!/usr/bin/env bash
# bench/tokenizer_bench.sh: GPT-2 encode throughput, hearth vs js-tiktoken and tiktoken (WASM),
# one thread each, on the same text (default ../shared/data/tinyshakespeare.txt; TEXT=... to
# change), then training time. Run by `make bench-tokenizer`; figures go in docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
TEXT=${TEXT:-../shared/data/tinyshakespeare.txt}
RUNS=${RUNS:-5}
[ -f "$TEXT" ] || { echo "tokenizer_bench: $TEXT not found (set TEXT=file)"; exit 1; }
[ -d node_modules/js-tiktoken ] || { echo "tokenizer_bench: node_modules missing (make deps)"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
specials=$(node tools/tiktoken_export.js gpt2 "$T/gpt2.tiktoken")
args=()
for s in $specials; do args+=(--special "$s"); done
"$B/hearth" tokenizer import --tiktoken "$T/gpt2.tiktoken" --pattern gpt2 "${args[@]}" --out "$T/gpt2.htok" > /dev/null
echo "== GPT-2 encode, one thread, $(basename "$TEXT") (best of $RUNS) on $(nproc) cores, $(uname -m)"
h=$("$B/tokenizer_bench" encode "$T/gpt2.htok" "$TEXT" "$RUNS")
echo "$h"
n=$(node bench/tokenizer_bench.mjs "$TEXT" "$RUNS")
echo "$n"
cold=$(echo "$h" | sed -n 's/.* cold \([0-9.]*\) MB\/s.*/\1/p')
for peer in js-tiktoken tiktoken-wasm; do
  p=$(echo "$n" | sed -n "s/^$peer .* \([0-9.]*\) MB\/s$/\1/p")
  awk -v h="$cold" -v p="$p" -v name="$peer" 'BEGIN { printf "hearth (cold cache) / %s: %.1fx\n", name, h / p }'
done
ht=$(echo "$h" | sed -n 's/.* \([0-9]*\) tokens.*/\1/p'); jt=$(echo "$n" | sed -n 's/^js-tiktoken .* \([0-9]*\) tokens.*/\1/p')
[ "$ht" = "$jt" ] || { echo "tokenizer_bench: token counts differ ($ht vs $jt)"; exit 1; }
echo "== training (byte-level BPE, GPT-2 pattern)"
"$B/tokenizer_bench" train "$TEXT" 20 8192
