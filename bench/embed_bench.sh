#!/usr/bin/env bash
# bench/embed_bench.sh: embedding throughput, hearth against llama.cpp's llama-embedding on the
# same GGUF file and texts: a BERT of all-MiniLM-L6-v2's shape (6 layers, hidden 384, 12 heads,
# FFN 1536, the all-MiniLM vocabulary) with random weights (tools/gguf_random_bert.py, shape
# minilm), in each of TYPES (default f32 f16), made once in CACHE (default ~/.cache/hearth-bench).
# The texts: N (default 400) sentences of 6-60 words cut from this repository's docs, one a line.
# Per type, REPS (default 5) interleaved pairs (hearth, llama.cpp, hearth, ...), each a whole
# process embedding every text with THREADS (default 2) threads: `hearth embed --stats` (texts
# batched 32 at a time, its default) and `llama-embedding -f TEXTS -c 512 -b 512 -ub 512` (the
# model's window; a batch of up to 512 tokens), mean pooling, L2-normalized. Two figures per run:
# texts/s of the computation alone (hearth's --stats: tokenizing and the model; llama.cpp's
# "prompt eval time", the model alone) and texts/s over the process's wall time (loading
# included). Prints every pair, the cosine of the two programs' vectors (the first pair), and per
# type the ratios hearth / llama.cpp: median and range. Both run with OMP_WAIT_POLICY=$WAIT
# (default passive: on a machine shared with other jobs, spin-waiting threads stall every
# parallel region when one of them is descheduled; WAIT=active measures the defaults).
#
#   bench/embed_bench.sh   (environment: BUILD, LLAMA_BIN, CACHE, TYPES, THREADS, REPS, N, WAIT)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
LLAMA_BIN=${LLAMA_BIN:-$HOME/.cache/hearth-peers/llama.cpp/build/bin}
GGUF_PY=${GGUF_PY:-$LLAMA_BIN/../../gguf-py}
CACHE=${CACHE:-$HOME/.cache/hearth-bench}
TYPES=${TYPES:-f32 f16}
THREADS=${THREADS:-2}
REPS=${REPS:-5}
N=${N:-400}
WAIT=${WAIT:-passive}
[ -x "$LLAMA_BIN/llama-embedding" ] || { echo "embed_bench: no llama-embedding in $LLAMA_BIN" >&2; exit 2; }
[ -x "$B/hearth" ] || { echo "embed_bench: no $B/hearth (make $B/hearth)" >&2; exit 2; }
mkdir -p "$CACHE"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# the texts: sentences of the docs, printable ASCII, 6 to 60 words, the first N
# (no backslashes: llama-embedding reads escapes such as \n in its prompt file)
cat docs/*.md README.md | tr -c '\040-\176\n' ' ' | tr -d '\\' | sed 's/[.;:] /&\n/g' |
  awk -v max="$N" 'NF >= 6 && c < max { s = $1; for (i = 2; i <= NF && i <= 60; i++) s = s " " $i; print s; c++ }' \
    > "$T/texts.txt"
n=$(wc -l < "$T/texts.txt")
sed 's/"/\\"/g; s/^/"/; s/$/"/' "$T/texts.txt" > "$T/texts.jsonl"
echo "== $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== BERT, all-MiniLM-L6-v2's shape, random weights; $n texts ($(wc -w < "$T/texts.txt") words); $THREADS threads; $REPS interleaved pairs per type; OMP_WAIT_POLICY=$WAIT"
med() { sort -g | awk '{ a[NR] = $1 } END { m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.2fx (%.2f-%.2f)", m, a[1], a[NR] }'; }
summary=()
for t in $TYPES; do
  f="$CACHE/bert-minilm-$t.gguf"
  if [ ! -f "$f" ]; then
    PYTHONPATH="$GGUF_PY" /usr/bin/python3 tools/gguf_random_bert.py tests/fixtures/embed/minilm_vocab.txt \
      "$f.tmp" --shape minilm --type "$t" --seed 1 > /dev/null
    mv "$f.tmp" "$f"
  fi
  rc=() rw=()
  for ((r = 1; r <= REPS; r++)); do
    s0=$(date +%s.%N)
    OMP_WAIT_POLICY=$WAIT "$B/hearth" embed -m "$f" -i "$T/texts.jsonl" -t "$THREADS" --stats > "$T/h.jsonl" 2> "$T/h.err" ||
      { cat "$T/h.err"; exit 1; }
    s1=$(date +%s.%N)
    OMP_WAIT_POLICY=$WAIT "$LLAMA_BIN/llama-embedding" -m "$f" -f "$T/texts.txt" -t "$THREADS" -c 512 -b 512 -ub 512 \
      --pooling mean --embd-normalize 2 --embd-output-format json > "$T/l.json" 2> "$T/l.err" || { tail "$T/l.err"; exit 1; }
    s2=$(date +%s.%N)
    hc=$(sed -n 's/.*: \([0-9.]*\) texts\/s/\1/p' "$T/h.err")
    lms=$(sed -n 's/.*prompt eval time = *\([0-9.]*\) ms.*/\1/p' "$T/l.err")
    lc=$(awk -v n="$n" -v ms="$lms" 'BEGIN { printf "%.1f", n / (ms / 1000) }')
    hw=$(awk -v n="$n" -v a="$s0" -v b="$s1" 'BEGIN { printf "%.1f", n / (b - a) }')
    lw=$(awk -v n="$n" -v a="$s1" -v b="$s2" 'BEGIN { printf "%.1f", n / (b - a) }')
    printf '%s pair %d: compute hearth %s texts/s, llama.cpp %s; wall hearth %s texts/s, llama.cpp %s (load %s)\n' \
      "$t" "$r" "$hc" "$lc" "$hw" "$lw" "$(cut -d' ' -f1 /proc/loadavg)"
    rc+=("$(awk -v a="$hc" -v b="$lc" 'BEGIN { print a / b }')")
    rw+=("$(awk -v a="$hw" -v b="$lw" 'BEGIN { print a / b }')")
    if [ "$r" = 1 ]; then
      /usr/bin/python3 - "$T/h.jsonl" "$T/l.json" << 'PY'
import json, sys
h = [json.loads(l)["embedding"] for l in open(sys.argv[1])]
l = [d["embedding"] for d in sorted(json.load(open(sys.argv[2]))["data"], key=lambda d: d["index"])]
if len(h) != len(l):
    print(f"   WARNING: hearth wrote {len(h)} vectors, llama.cpp {len(l)}: the texts were read differently")
c = [sum(x * y for x, y in zip(a, b)) / (sum(x * x for x in a) * sum(y * y for y in b)) ** 0.5 for a, b in zip(h, l)]
print(f"   {len(c)} vectors, cosine hearth vs llama.cpp: min {min(c):.6f}, mean {sum(c) / len(c):.6f}")
PY
    fi
  done
  summary+=("$t: compute $(printf '%s\n' "${rc[@]}" | med), wall $(printf '%s\n' "${rw[@]}" | med)")
done
echo "== hearth / llama.cpp texts/s (median, range), load now $(cut -d' ' -f1-3 /proc/loadavg):"
printf '   %s\n' "${summary[@]}"
