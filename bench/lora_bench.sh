#!/usr/bin/env bash
# bench/lora_bench.sh: what a LoRA adapter applied at serve time (unmerged: y = W x + s B (A x))
# costs, hearth beside llama.cpp. The base: bench/infer_1b_bench.sh's 1.1B Llama (TinyLlama's
# shape, random weights) in TYPES (default Q4_K_M and Q8_0; llama.cpp c392e509 segfaults
# applying an adapter over a Q4_0 base, whose weights it repacks); the adapter: rank RANK
# (default 16) on every projection of every layer, F32 (tools/gguf_random_lora.py; 50 MB at rank
# 16), made once in CACHE. Each engine measures A/B inside one process, so that a loaded
# machine's drift falls on both alike: hearth's build/infer_ppbench --lora, llama.cpp's
# bench/peers/llama_lora_ab.c (built here against libllama) — pp P (one forward of P tokens
# from an empty cache) without and with the adapter, alternately; tg N (single-token forwards)
# without and with, in alternating blocks of 4. REPS rounds per type, the engines interleaved;
# prints every round, then per engine the ratio with / without the adapter: median and range.
# hearth with OMP_WAIT_POLICY=passive (libgomp's spinning workers stall on a loaded machine).
#
#   bench/lora_bench.sh   (environment: BUILD, LLAMA_DIR, CACHE, TYPES, RANK, P, N_TOKENS,
#                          THREADS, REPS)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
LLAMA_DIR=${LLAMA_DIR:-$HOME/.cache/hearth-peers/llama.cpp}
GGUF_PY=${GGUF_PY:-$LLAMA_DIR/gguf-py}
CACHE=${CACHE:-$HOME/.cache/hearth-bench}
TYPES=${TYPES:-Q4_K_M Q8_0}
RANK=${RANK:-16}
P=${P:-64}
N=${N_TOKENS:-32}
THREADS=${THREADS:-2}
REPS=${REPS:-5}
[ -x "$B/infer_ppbench" ] || { echo "lora_bench: no $B/infer_ppbench (make $B/infer_ppbench)" >&2; exit 2; }
[ -f "$LLAMA_DIR/build/bin/libllama.so" ] || { echo "lora_bench: no libllama.so in $LLAMA_DIR/build/bin" >&2; exit 2; }
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
cc -O2 -o "$T/llama_lora_ab" bench/peers/llama_lora_ab.c -Itools -I"$LLAMA_DIR/include" \
  -I"$LLAMA_DIR/ggml/include" -L"$LLAMA_DIR/build/bin" -lllama -lggml -lggml-base \
  -Wl,-rpath,"$LLAMA_DIR/build/bin"
echo "== $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== llama1b (1.1B, random weights) + a rank-$RANK adapter on q,k,v,o,gate,up,down ($(du -h "$AD" | cut -f1), F32); $THREADS threads; pp$P, tg$N; $REPS rounds"
med() { sort -g | awk '{ a[NR] = $1 } END { m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.3fx (%.3f-%.3f)", m, a[1], a[NR] }'; }
# "ppP 1 base X lora Y" and "tgN 1 base X lora Y" -> "ppbase pplora tgbase tglora"
four() { awk '/^pp/ { a = $4; b = $6 } /^tg/ { c = $4; d = $6 } END { print a, b, c, d }' "$1"; }
for t in $TYPES; do
  f="$CACHE/llama1b-$t.gguf"
  [ -f "$f" ] || { echo "lora_bench: no $f: run TYPES=$t bench/infer_1b_bench.sh once" >&2; exit 2; }
  hp=() ht=() lp=() lt=()
  for ((r = 1; r <= REPS; r++)); do
    OMP_WAIT_POLICY=passive "$B/infer_ppbench" "$f" -p "$P" -n "$N" -t "$THREADS" -r 1 --lora "$AD" \
      > "$T/h.out" 2>&1 || { cat "$T/h.out" >&2; exit 1; }
    "$T/llama_lora_ab" "$f" "$AD" "$P" "$N" 1 "$THREADS" > "$T/l.out" 2> "$T/l.err" || { tail -3 "$T/l.err" >&2; exit 1; }
    read -r h0p h1p h0t h1t < <(four "$T/h.out")
    read -r l0p l1p l0t l1t < <(four "$T/l.out")
    hp+=("$(awk -v a="$h1p" -v b="$h0p" 'BEGIN { print a / b }')")
    ht+=("$(awk -v a="$h1t" -v b="$h0t" 'BEGIN { print a / b }')")
    lp+=("$(awk -v a="$l1p" -v b="$l0p" 'BEGIN { print a / b }')")
    lt+=("$(awk -v a="$l1t" -v b="$l0t" 'BEGIN { print a / b }')")
    printf '   %-6s round %d: hearth pp%d %6.2f -> %6.2f, tg%d %5.2f -> %5.2f | llama.cpp pp %6.2f -> %6.2f, tg %5.2f -> %5.2f tokens/s (none -> adapter)\n' \
      "$t" "$r" "$P" "$h0p" "$h1p" "$N" "$h0t" "$h1t" "$l0p" "$l1p" "$l0t" "$l1t"
  done
  echo "| $t base, rank-$RANK adapter | prompt (pp$P): adapter / none | decode (tg$N): adapter / none |"
  echo "|---|---|---|"
  echo "| hearth | $(printf '%s\n' "${hp[@]}" | med) | $(printf '%s\n' "${ht[@]}" | med) |"
  echo "| llama.cpp | $(printf '%s\n' "${lp[@]}" | med) | $(printf '%s\n' "${lt[@]}" | med) |"
done
echo "== load at the end $(cut -d' ' -f1-3 /proc/loadavg)"
