#!/usr/bin/env bash
# bench/lora_bench.sh: what a LoRA adapter applied at serve time (unmerged: y = W x + s B (A x))
# costs, hearth beside llama.cpp. The base: bench/infer_1b_bench.sh's 1.1B Llama (TinyLlama's
# shape, random weights) in TYPES (default Q4_0); the adapter: rank RANK (default 16) on every
# projection of every layer, F32 (tools/gguf_random_lora.py; about 50 MB at rank 16), made once
# in CACHE. Per type, REPS interleaved rounds of four runs: hearth without and with the adapter
# (build/infer_ppbench: pp16, then tg N single-token forwards), llama.cpp without and with it
# (llama-cli -n N --ignore-eos, its prompt and eval tokens/s). Prints every round, then per
# engine the ratio with / without the adapter: median and range over the rounds (the ratio
# matters; absolute figures move with the machine's load). OMP_WAIT_POLICY=passive for hearth
# and --poll 0 for llama.cpp: on a loaded machine spinning workers stall.
#
#   bench/lora_bench.sh   (environment: BUILD, LLAMA_BIN, CACHE, TYPES, RANK, N_TOKENS, THREADS, REPS)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
LLAMA_BIN=${LLAMA_BIN:-$HOME/.cache/hearth-peers/llama.cpp/build/bin}
GGUF_PY=${GGUF_PY:-$LLAMA_BIN/../../gguf-py}
CACHE=${CACHE:-$HOME/.cache/hearth-bench}
TYPES=${TYPES:-Q4_K_M Q8_0}
RANK=${RANK:-16}
N=${N_TOKENS:-32}
THREADS=${THREADS:-2}
REPS=${REPS:-5}
[ -x "$B/infer_ppbench" ] || { echo "lora_bench: no $B/infer_ppbench (make $B/infer_ppbench)" >&2; exit 2; }
[ -x "$LLAMA_BIN/llama-cli" ] || { echo "lora_bench: no llama-cli in $LLAMA_BIN" >&2; exit 2; }
F16="$CACHE/llama1b-F16.gguf"
[ -f "$F16" ] || { echo "lora_bench: no $F16: run bench/infer_1b_bench.sh once (it makes the models)" >&2; exit 2; }
AD="$CACHE/llama1b-lora$RANK.gguf"
if [ ! -f "$AD" ]; then
  echo "== writing $AD (once)"
  PYTHONPATH="$GGUF_PY" /usr/bin/python3 tools/gguf_random_lora.py "$F16" "$AD.tmp" "$RANK"
  mv "$AD.tmp" "$AD"
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
prompt=$(printf 'word %.0s' $(seq 15)) # 16 tokens with BOS, as hearth's pp16
echo "== $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== llama1b (1.1B, random weights) + a rank-$RANK adapter on q,k,v,o,gate,up,down ($(du -h "$AD" | cut -f1), F32); $THREADS threads; tg$N; $REPS rounds"
med() { sort -g | awk '{ a[NR] = $1 } END { m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.3fx (%.3f-%.3f)", m, a[1], a[NR] }'; }
hearth() { # ARGS...: "pp tg" tokens/s
  OMP_WAIT_POLICY=passive "$B/infer_ppbench" "$@" -p 16 -n "$N" -t "$THREADS" -r 1 > "$T/h.out" 2>&1 || { cat "$T/h.out" >&2; exit 1; }
  awk '/^pp/ { p = $3 } /^tg/ { g = $3 } END { print p, g }' "$T/h.out"
}
llama() { # ARGS...: "pp tg" tokens/s
  "$LLAMA_BIN/llama-cli" "$@" -p "$prompt" -n "$N" --temp 0 --ignore-eos -no-cnv --no-warmup \
    -t "$THREADS" -tb "$THREADS" --poll 0 > /dev/null 2> "$T/l.err" || { tail -5 "$T/l.err" >&2; exit 1; }
  p=$(sed -n 's/.*prompt eval time .* \([0-9.]*\) tokens per second.*/\1/p' "$T/l.err" | head -1)
  g=$(sed -n 's/.* eval time .*runs.* \([0-9.]*\) tokens per second.*/\1/p' "$T/l.err" | grep -v '^$' | tail -1)
  echo "$p $g"
}
for t in $TYPES; do
  f="$CACHE/llama1b-$t.gguf"
  [ -f "$f" ] || { echo "lora_bench: no $f: run TYPES=$t bench/infer_1b_bench.sh once" >&2; exit 2; }
  hp=() ht=() lp=() lt=()
  for ((r = 1; r <= REPS; r++)); do
    read -r h0p h0t < <(hearth "$f")
    read -r h1p h1t < <(hearth "$f" --lora "$AD")
    read -r l0p l0t < <(llama -m "$f")
    read -r l1p l1t < <(llama -m "$f" --lora "$AD")
    hp+=("$(awk -v a="$h1p" -v b="$h0p" 'BEGIN { print a / b }')")
    ht+=("$(awk -v a="$h1t" -v b="$h0t" 'BEGIN { print a / b }')")
    lp+=("$(awk -v a="$l1p" -v b="$l0p" 'BEGIN { print a / b }')")
    lt+=("$(awk -v a="$l1t" -v b="$l0t" 'BEGIN { print a / b }')")
    printf '   %-5s round %d: hearth pp16 %6.2f -> %6.2f, tg%d %5.2f -> %5.2f | llama.cpp pp %6.2f -> %6.2f, tg %5.2f -> %5.2f tokens/s (no adapter -> adapter)\n' \
      "$t" "$r" "$h0p" "$h1p" "$N" "$h0t" "$h1t" "$l0p" "$l1p" "$l0t" "$l1t"
  done
  echo "| $t, rank $RANK | prompt: adapter / none | decode: adapter / none |"
  echo "|---|---|---|"
  echo "| hearth | $(printf '%s\n' "${hp[@]}" | med) | $(printf '%s\n' "${ht[@]}" | med) |"
  echo "| llama.cpp | $(printf '%s\n' "${lp[@]}" | med) | $(printf '%s\n' "${lt[@]}" | med) |"
done
echo "== load at the end $(cut -d' ' -f1-3 /proc/loadavg)"
