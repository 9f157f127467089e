#!/usr/bin/env bash
# bench/infer_bench.sh: single-stream generation, hearth against llama.cpp on the same model
# file. The model: the gpt2-124m preset with GPT-2's own 50257-token vocabulary (the GGUF
# vocabulary in ../shared/data, or VOCAB=FILE), trained for one step on tinyshakespeare (its
# weights are near their random init: speed does not depend on them), exported as GGUF; both
# engines load that file. Each engine: a 64-token prompt, then N_TOKENS greedy tokens with the
# end-of-text token ignored by llama.cpp (hearth's continuation of a one-step model never hits
# it; the token counts are printed and compared), THREADS threads. Reports prompt (prefill) and
# decode tokens/s, best of REPS runs, and the ratios. Figures go in docs/BENCHMARKS.md.
#
#   bench/infer_bench.sh        (environment: BUILD, LLAMA_BIN, VOCAB, N_TOKENS, THREADS, REPS)
set -euo pipefail
cd "$(dirname "$0")/.."
H=${BUILD:-build}/hearth
LLAMA_BIN=${LLAMA_BIN:-$HOME/.cache/hearth-peers/llama.cpp/build/bin}
VOCAB=${VOCAB:-../shared/data/ggml-vocab-gpt-2.gguf}
TEXT=${TEXT:-../shared/data/tinyshakespeare.txt}
N=${N_TOKENS:-128}
THREADS=${THREADS:-2}
REPS=${REPS:-3}
[ -x "$LLAMA_BIN/llama-cli" ] || { echo "infer_bench: no llama-cli in $LLAMA_BIN" >&2; exit 2; }
[ -f "$VOCAB" ] && [ -f "$TEXT" ] || { echo "infer_bench: need $VOCAB and $TEXT (../shared/data)" >&2; exit 2; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir "$T/docs" && split -l 100 "$TEXT" "$T/docs/part-" # documents, so some go to the val split
"$H" prepare --vocab "$VOCAB" --out "$T/data" "$T/docs" > "$T/prep.log" 2>&1 || { tail -3 "$T/prep.log"; exit 1; }
"$H" train --data "$T/data" --preset gpt2-124m --steps 1 --batch 1 --seq 64 --ckpt-every 1 \
  --sample 0 --eval-every 0 --out "$T/run" > "$T/train.log" 2>&1 || { tail -3 "$T/train.log"; exit 1; }
"$H" export "$T/run" --format gguf -o "$T/m.gguf" > /dev/null
prompt=$(head -c 2000 "$TEXT" | tr '\n' ' ' | cut -d' ' -f1-48)
echo "== $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== gpt2-124m (50257-token GPT-2 vocabulary) as GGUF F32, $(du -h "$T/m.gguf" | cut -f1); $THREADS threads; greedy, $N tokens"
best() { sort -g | tail -1; }
hp=() hd=() lp=() ld=()
for ((r = 1; r <= REPS; r++)); do
  # hearth: "load .. s, prompt P tokens, generated G tokens (..), TTFT X ms, D tokens/s decode"
  "$H" generate --model "$T/m.gguf" --threads "$THREADS" --temperature 0 --max-tokens "$N" "$prompt" \
    > /dev/null 2> "$T/h.err"
  line=$(tail -1 "$T/h.err")
  P=$(sed -n 's/.*prompt \([0-9]*\) tokens.*/\1/p' <<< "$line")
  G=$(sed -n 's/.*generated \([0-9]*\) tokens.*/\1/p' <<< "$line")
  ttft=$(sed -n 's/.*TTFT \([0-9.]*\) ms.*/\1/p' <<< "$line")
  hp+=("$(awk -v p="$P" -v t="$ttft" 'BEGIN { printf "%.1f", p / (t / 1000) }')")
  hd+=("$(sed -n 's/.* \([0-9.]*\) tokens\/s decode.*/\1/p' <<< "$line")")
  # llama.cpp: llama_perf_context_print lines for the prompt and for the generated tokens
  "$LLAMA_BIN/llama-cli" -m "$T/m.gguf" -p "$prompt" -n "$N" --temp 0 --ignore-eos -no-cnv \
    --no-warmup -t "$THREADS" -tb "$THREADS" > /dev/null 2> "$T/l.err"
  lp+=("$(sed -n 's/.*prompt eval time .* \([0-9.]*\) tokens per second.*/\1/p' "$T/l.err" | head -1)")
  ld+=("$(sed -n 's/.* eval time .*runs.* \([0-9.]*\) tokens per second.*/\1/p' "$T/l.err" | grep -v '^$' | tail -1)")
  LP=$(sed -n 's/.*prompt eval time = .* \/ *\([0-9]*\) tokens.*/\1/p' "$T/l.err" | head -1)
  echo "   run $r: hearth prompt $P tok ${hp[-1]} tok/s, decode $G tok ${hd[-1]} tok/s | llama.cpp prompt $LP tok ${lp[-1]} tok/s, decode ${ld[-1]} tok/s"
done
H_P=$(printf '%s\n' "${hp[@]}" | best); H_D=$(printf '%s\n' "${hd[@]}" | best)
L_P=$(printf '%s\n' "${lp[@]}" | best); L_D=$(printf '%s\n' "${ld[@]}" | best)
echo "| engine | prompt tokens/s | decode tokens/s |"
echo "|---|---|---|"
echo "| hearth | $H_P | $H_D |"
echo "| llama.cpp | $L_P | $L_D |"
echo "| hearth / llama.cpp | $(awk -v a="$H_P" -v b="$L_P" 'BEGIN { printf "%.2fx", a / b }') | $(awk -v a="$H_D" -v b="$L_D" 'BEGIN { printf "%.2fx", a / b }') |"
