#!/usr/bin/env bash
# bench/infer_1b_bench.sh: hearth against llama-bench on a 1.1B Llama (TinyLlama's shape: width
# 2048, 22 layers, 32 heads, 4 KV heads, FFN 5632, Llama's 32000-token SentencePiece vocabulary)
# with random weights, in F16 (tools/gguf_random_llama.py, shape 1b) and as llama-quantize makes it in
# Q4_0, Q8_0 and Q4_K_M. The files are made once, in CACHE (default ~/.cache/hearth-bench).
# Per type, REPS interleaved pairs (hearth then llama.cpp, llama.cpp then hearth, ...): prompt
# processing pp512 (one forward of 512 tokens from an empty cache) and generation tg128 (128
# single-token forwards from an empty cache), tokens/s, as `llama-bench -p 512 -n 128 -t THREADS
# -r 1` measures them (hearth's side: build/infer_ppbench), and each process's peak RSS
# (/usr/bin/time -v). Prints every pair, then per type the ratios hearth / llama.cpp: median and
# range over the pairs.
# hearth runs with WAIT: spin (the default: GOMP_SPINCOUNT=30000, what `hearth` itself chooses
# when the machine's load leaves it the cores), passive (what `hearth` chooses on a loaded
# machine: libgomp's spin-waiting threads stall every parallel region when one of them is
# descheduled) or active (OMP_WAIT_POLICY=active: spinning without end); llama-bench with
# its defaults plus LLAMA_ARGS (e.g. LLAMA_ARGS="--poll 0": its workers then sleep instead of
# polling, the fair setting on a loaded machine).
#
#   bench/infer_1b_bench.sh   (environment: BUILD, LLAMA_BIN, CACHE, VOCAB, TYPES, THREADS, REPS, WAIT,
#                              LLAMA_ARGS)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
LLAMA_BIN=${LLAMA_BIN:-$HOME/.cache/hearth-peers/llama.cpp/build/bin}
GGUF_PY=${GGUF_PY:-$LLAMA_BIN/../../gguf-py}
CACHE=${CACHE:-$HOME/.cache/hearth-bench}
VOCAB=${VOCAB:-../shared/data/ggml-vocab-llama-spm.gguf}
TYPES=${TYPES:-Q4_0 Q8_0 Q4_K_M F16}
THREADS=${THREADS:-2}
REPS=${REPS:-3}
WAIT=${WAIT:-spin}
case "$WAIT" in
  spin) WAIT_ENV="GOMP_SPINCOUNT=30000" ;;
  passive | active) WAIT_ENV="OMP_WAIT_POLICY=$WAIT" ;;
  *) echo "infer_1b_bench: WAIT is spin, passive or active, not '$WAIT'"; exit 2 ;;
esac
LLAMA_ARGS=${LLAMA_ARGS:-}
[ -x "$LLAMA_BIN/llama-bench" ] || { echo "infer_1b_bench: no llama-bench in $LLAMA_BIN" >&2; exit 2; }
[ -x "$B/infer_ppbench" ] || { echo "infer_1b_bench: no $B/infer_ppbench (make $B/infer_ppbench)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "infer_1b_bench: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
mkdir -p "$CACHE"
F16="$CACHE/llama1b-F16.gguf"
if [ ! -f "$F16" ]; then
  [ -f "$VOCAB" ] || { echo "infer_1b_bench: need $VOCAB (../shared/data)" >&2; exit 2; }
  echo "== writing $F16 (once)"
  PYTHONPATH="$GGUF_PY" /usr/bin/python3 tools/gguf_random_llama.py "$VOCAB" "$F16.tmp" 1 1b
  mv "$F16.tmp" "$F16"
fi
for t in $TYPES; do
  f="$CACHE/llama1b-$t.gguf"
  if [ ! -f "$f" ]; then
    echo "== llama-quantize $t (once)"
    "$LLAMA_BIN/llama-quantize" "$F16" "$f.tmp" "$t" "$THREADS" > "$CACHE/quantize-$t.log" 2>&1
    mv "$f.tmp" "$f"
  fi
done
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
echo "== $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== llama1b (1.1B, TinyLlama's shape, random weights); $THREADS threads; pp512, tg128; $REPS interleaved pairs per type; hearth $WAIT_ENV; llama-bench ${LLAMA_ARGS:-(defaults)}"
rss() { sed -n 's/.*Maximum resident set size (kbytes): \([0-9]*\).*/\1/p' "$1"; }
med() { sort -g | awk '{ a[NR] = $1 } END { m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.2fx (%.2f-%.2f)", m, a[1], a[NR] }'; }
# hearth_run FILE / llama_run FILE: one process each; they set hp ht hr / lp lt lr (pp512 and
# tg128 tokens/s, peak RSS in KiB)
hearth_run() {
  env "$WAIT_ENV" /usr/bin/time -v "$B/infer_ppbench" "$1" -p 512 -n 128 -t "$THREADS" -r 1 > "$T/h.out" 2> "$T/h.time" ||
    { cat "$T/h.time"; exit 1; }
  hp=$(awk '/^pp512/ { print $3 }' "$T/h.out"); ht=$(awk '/^tg128/ { print $3 }' "$T/h.out")
  hr=$(rss "$T/h.time")
}
llama_run() {
  /usr/bin/time -v "$LLAMA_BIN/llama-bench" -m "$1" -p 512 -n 128 -t "$THREADS" -r 1 -o csv $LLAMA_ARGS \
    > "$T/l.out" 2> "$T/l.time" || { cat "$T/l.time"; exit 1; }
  # csv: the avg_ts column of the pp row (n_prompt 512) and of the tg row (n_gen 128)
  read -r lp lt < <(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) { gsub(/"/, "", $i); c[$i] = i } next }
    { gsub(/"/, ""); if ($c["n_gen"] == 0) p = $c["avg_ts"]; else g = $c["avg_ts"] } END { print p, g }' "$T/l.out")
  lr=$(rss "$T/l.time")
}
summary=()
for t in $TYPES; do
  f="$CACHE/llama1b-$t.gguf"
  rp=() rt=() rr=()
  for ((r = 1; r <= REPS; r++)); do
    # ABBA: the pair's first run alternates, so a drift of the machine's speed favours neither
    if ((r % 2)); then hearth_run "$f" && llama_run "$f"; else llama_run "$f" && hearth_run "$f"; fi
    rp+=("$(awk -v a="$hp" -v b="$lp" 'BEGIN { print a / b }')")
    rt+=("$(awk -v a="$ht" -v b="$lt" 'BEGIN { print a / b }')")
    rr+=("$(awk -v a="$hr" -v b="$lr" 'BEGIN { print a / b }')")
    printf '   %-6s pair %d: hearth pp512 %7.2f tg128 %6.2f RSS %5d MiB | llama.cpp pp512 %7.2f tg128 %6.2f RSS %5d MiB\n' \
      "$t" "$r" "$hp" "$ht" $((hr / 1024)) "$lp" "$lt" $((lr / 1024))
  done
  summary+=("| $t | $(du -BM "$f" | cut -f1) | $(printf '%s\n' "${rp[@]}" | med) | $(printf '%s\n' "${rt[@]}" | med) | $(printf '%s\n' "${rr[@]}" | med) |")
done
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| type | file | pp512 hearth / llama.cpp | tg128 hearth / llama.cpp | peak RSS hearth / llama.cpp |"
echo "|---|---|---|---|---|"
printf '%s\n' "${summary[@]}"
