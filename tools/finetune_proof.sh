#!/usr/bin/env bash
# tools/finetune_proof.sh: fine-tuning a real pretrained model on a corpus of another style
# (docs/BENCHMARKS.md, "Fine-tuning stories260K on Shakespeare", records its output).
#
#   tools/finetune_proof.sh [STEPS]
#
# The base: tests/fixtures/gguf/stories260K-F16.gguf (karpathy's 260K-parameter Llama trained
# on TinyStories). The new style: Tiny Shakespeare (/work/shared/data/tinyshakespeare.txt; its
# first 200 KB to train on, the next 30 KB held out). The original style: 40 stories the base
# itself writes (hearth generate, temperature 0.8, seeds 1..40). LoRA (rank 16, every target)
# (LORA: its options, default rank 16, alpha 32, every target, lr 3e-3)
# and --full are trained for STEPS steps (default 300) from the same data; then llama.cpp's
# llama-perplexity measures each model (the base, the base with hearth's adapter merged by
# `hearth merge`, the --full model.gguf) on both held-out texts, and each writes its greedy
# continuation of "Once upon a time" (hearth generate).
set -euo pipefail
STEPS=${1:-300}
H=${H:-./build/hearth}
B=${LLAMA_BIN:-$HOME/.cache/hearth-peers/llama.cpp/build/bin}
BASE=tests/fixtures/gguf/stories260K-F16.gguf
SHAKE=${SHAKE:-/work/shared/data/tinyshakespeare.txt}
T=${T:-$(mktemp -d)}
export OMP_NUM_THREADS=${THREADS:-2} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
head -c 200000 "$SHAKE" > "$T/shake_train.txt"
head -c 230000 "$SHAKE" | tail -c 30000 > "$T/shake_val.txt"
: > "$T/stories.txt"
for s in $(seq 1 40); do
  "$H" generate -m "$BASE" --temperature 0.8 -s "$s" -n 200 "Once upon a time" 2>/dev/null \
    | sed 's/^/Once upon a time/' >> "$T/stories.txt"
  printf '\n\n' >> "$T/stories.txt"
done
common=(--base "$BASE" --data "$T/shake_train.txt" --val "$T/shake_val.txt" --steps "$STEPS"
  --batch 8 --seq 128 --eval-every 50 --eval-batches 16 --threads "$OMP_NUM_THREADS")
LORA=${LORA:---lora-rank 16 --lora-alpha 32 --lora-targets all --lora-dropout 0 --lr 3e-3}
echo "== LoRA ($LORA)"
# shellcheck disable=SC2086
"$H" finetune "${common[@]}" --out "$T/lora" $LORA | grep -E "held-out|trained param"
"$H" merge --base "$BASE" --lora "$T/lora/adapter.gguf" -o "$T/lora_merged.gguf" > /dev/null
echo "== full (lr 1e-3)"
"$H" finetune "${common[@]}" --out "$T/full" --full --lr 1e-3 | grep -E "held-out|trained param"
ppl() { # model text -> mean NLL per token (ln of llama-perplexity's final estimate)
  "$B/llama-perplexity" -m "$1" -f "$2" -c 128 -b 128 -t 2 2>&1 \
    | grep -o 'Final estimate: PPL = [0-9.]*' | awk '{printf "%.4f", log($5)}'
}
printf '\n%-28s %-22s %-22s\n' model "Shakespeare val (nll)" "TinyStories-style (nll)"
for m in "$BASE" "$T/lora_merged.gguf" "$T/full/model.gguf"; do
  printf '%-28s %-22s %-22s\n' "$(basename "$m")" "$(ppl "$m" "$T/shake_val.txt")" \
    "$(ppl "$m" "$T/stories.txt")"
done
echo
for m in "$BASE" "$T/lora_merged.gguf" "$T/full/model.gguf"; do
  echo "-- $(basename "$m"): greedy after \"Once upon a time\""
  "$H" generate -m "$m" --temperature 0 -n 60 "Once upon a time" 2>/dev/null
  echo
done
echo "(files in $T)"
