#!/usr/bin/env bash
# tools/finetune_fixtures.sh: tests/fixtures/finetune — a LoRA adapter hearth trained on the
# committed stories260K GGUF, and llama.cpp's greedy tokens with it (test_finetune's
# llamacpp_parity checks hearth's against them).
#
#   tools/finetune_fixtures.sh [OUT]   (run from the repository root; needs build/hearth and
#                                       llama.cpp at $LLAMA_DIR, default ~/.cache/hearth-peers)
#
# 1. adapter.gguf: `hearth finetune` (rank 8, alpha 16, every target, 40 steps, lr 5e-3) on a
#    generated corpus of one pattern ("ROMEO. Thou art my sun, ..."), so the adapter moves the
#    model's greedy text away from the base's.
# 2. greedy.tsv: the prompt ids (BOS + "Once upon a time" in the model's vocabulary), then
#    llama.cpp's 40 greedy tokens (tools/llama_lora_greedy.c: one llama_decode per token, one
#    thread, F16 KV cache) on the base with `--lora adapter.gguf` ("lora"), and on the model
#    `hearth merge` makes of the two ("merged"); for the record (comment lines) the base's own
#    tokens and those of the model llama-export-lora makes of the base and the adapter.
set -euo pipefail
OUT=${1:-tests/fixtures/finetune}
H=${H:-./build/hearth}
BASE=tests/fixtures/gguf/stories260K-F16.gguf
LLAMA_DIR=${LLAMA_DIR:-$HOME/.cache/hearth-peers/llama.cpp}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cc -O2 -o "$T/llg" "$(dirname "$0")/llama_lora_greedy.c" -I"$LLAMA_DIR/include" \
  -I"$LLAMA_DIR/ggml/include" -L"$LLAMA_DIR/build/bin" -lllama -lggml -lggml-base \
  -Wl,-rpath,"$LLAMA_DIR/build/bin"
mkdir -p "$OUT"
suns=(sun moon star rose) names=(Juliet night lady) places=(east west sky garden stars)
for i in $(seq 0 399); do
  echo "ROMEO. Thou art my ${suns[i % 4]}, sweet ${names[i % 3]} of the ${places[i % 5]}."
done > "$T/corpus.txt"
OMP_NUM_THREADS=2 "$H" finetune --base "$BASE" --data "$T/corpus.txt" --out "$T/run" --steps 40 \
  --batch 4 --seq 32 --lr 5e-3 --lora-targets all --lora-dropout 0 > /dev/null
cp "$T/run/adapter.gguf" "$OUT/adapter.gguf"
"$H" merge --base "$BASE" --lora "$OUT/adapter.gguf" -o "$T/merged.gguf" > /dev/null
ids="1 $(printf 'Once upon a time' | "$H" tokenizer encode --vocab "$BASE")"
{
  printf '# llama.cpp %s: tools/llama_lora_greedy.c, 40 greedy tokens after the prompt\n' \
    "${LLAMA_COMMIT:-c392e509}"
  printf 'prompt\t%s\n' "$ids"
  # shellcheck disable=SC2086
  printf 'lora\t%s\n' "$("$T/llg" "$BASE" "$OUT/adapter.gguf" 40 $ids)"
  # shellcheck disable=SC2086
  printf 'merged\t%s\n' "$("$T/llg" "$T/merged.gguf" - 40 $ids)"
  # shellcheck disable=SC2086
  printf '# base (no adapter)\t%s\n' "$("$T/llg" "$BASE" - 40 $ids)"
  # llama.cpp's own merge of the adapter (llama-export-lora), for the record
  "$LLAMA_DIR/build/bin/llama-export-lora" -m "$BASE" --lora "$OUT/adapter.gguf" \
    -o "$T/exported.gguf" > /dev/null 2>&1
  # shellcheck disable=SC2086
  printf '# llama-export-lora model\t%s\n' "$("$T/llg" "$T/exported.gguf" - 40 $ids)"
} > "$OUT/greedy.tsv"
cat "$OUT/greedy.tsv"
