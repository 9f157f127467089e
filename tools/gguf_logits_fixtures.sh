#!/usr/bin/env bash
# tools/gguf_logits_fixtures.sh: llama.cpp's logits at every position on the GGUF parity
# fixtures (tests/fixtures/gguf, tools/gguf_parity_fixtures.sh), which
# tests/infer/test_gguf_logits.c compares hearth's with (make test, no llama.cpp needed).
#
#   tools/gguf_logits_fixtures.sh [OUT_DIR]      (default tests/fixtures/gguf_logits)
#
# For each file of tests/fixtures/gguf/expected.tsv, its first prompt: the prompt's ids and
# llama.cpp's 64 greedy tokens after it, fed one at a time to llama.cpp (tools/llama_logits.c,
# built here against LLAMA_DIR's libllama, 1 thread, F16 KV cache); OUT_DIR/FILE.f32 holds the
# logits after each id (rows of the vocabulary, float32 little-endian) and OUT_DIR/ids.tsv the
# ids per file.
#
# Environment: LLAMA_DIR (default ~/.cache/hearth-peers/llama.cpp, built), LLAMA_COMMIT
# (recorded in ids.tsv; default c392e509).
set -euo pipefail
OUT=${1:-tests/fixtures/gguf_logits}
FIX=tests/fixtures/gguf
LLAMA_DIR=${LLAMA_DIR:-$HOME/.cache/hearth-peers/llama.cpp}
LLAMA_COMMIT=${LLAMA_COMMIT:-c392e509}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cc -O2 -o "$T/llama_logits" "$(dirname "$0")/llama_logits.c" -I"$LLAMA_DIR/include" \
  -I"$LLAMA_DIR/ggml/include" -L"$LLAMA_DIR/build/bin" -lllama -lggml -lggml-base \
  -Wl,-rpath,"$LLAMA_DIR/build/bin"
mkdir -p "$OUT"
{
  printf '# llama.cpp %s: tools/llama_logits.c, one token per llama_decode, 1 thread, F16 KV\n' \
    "$LLAMA_COMMIT"
  printf '# file\tids (the prompt and llama.cpp greedy tokens; one logits row after each)\n'
  seen=""
  while IFS=$'\t' read -r file prompt pids gen; do
    case "$file" in '#'*) continue ;; esac
    case " $seen " in *" $file "*) continue ;; esac
    seen="$seen $file"
    ids="$(echo $pids $gen)"
    # shellcheck disable=SC2086
    "$T/llama_logits" "$FIX/$file" "$OUT/${file%.gguf}.f32" $ids
    printf '%s\t%s\n' "$file" "$ids"
  done < "$FIX/expected.tsv"
} > "$OUT/ids.tsv"
ls -l "$OUT"
