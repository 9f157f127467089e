#!/usr/bin/env bash
# tools/gguf_parity_fixtures.sh: the GGUF fixtures of tests/fixtures/gguf and llama.cpp's greedy
# tokens on them, which tests/infer checks hearth against (make test, no llama.cpp needed).
#
#   tools/gguf_parity_fixtures.sh [OUT_DIR]      (default tests/fixtures/gguf)
#
# Two models, quantized by llama.cpp's own llama-quantize:
#  - stories260K (karpathy's llama2.c model, ../shared/data/models/stories260K) converted by
#    llama-convert-llama2c-to-ggml: a real pretrained Llama, in F16 and BF16. Its other types
#    cannot be made: ffn_down's rows are 172 long, no multiple of 32, and this llama-quantize
#    refuses the file rather than falling back ("Unsupported tensor size encountered");
#  - tools/gguf_random_llama.py's random Llama of width 256 (stories260K's vocabulary), every
#    matrix rows of 256, in each quantized type with --pure (every matrix, token_embd included,
#    in that type): Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q4_K Q5_K Q6_K.
# For each file and prompt, llama-cli decodes 64 tokens greedily (--temp 0, 1 thread,
# --ignore-eos: the end-of-text token, 2 here, is never chosen, so every run is 64 tokens long)
# with -lv 1, whose "eval: [ 'piece':id, ... ]" log lines give the prompt's ids (the first) and
# each sampled token (the next ones).
# expected.tsv: file, prompt, prompt ids, generated ids (tab-separated; ids space-separated).
#
# The model families (OUT_FAMILIES, default tests/fixtures/gguf-families): for each of llama
# (Llama 3.1-style), qwen2, phi3 and gemma2, tools/gguf_random_llama.py's small random model of
# that architecture (its vocabulary llama.cpp's models/ggml-vocab-llama-spm.gguf cut to 1000
# tokens plus the family's chat tokens, its chat template the family's from models/templates),
# in F16 and Q8_0 by llama-quantize. tools/llamacpp_ref.c, built against llama.cpp's libllama,
# records for each file and prompt the prompt's ids (llama_tokenize with add_special and
# parse_special) and 64 greedy tokens (end-of-generation tokens never chosen); the chat prompt is
# the file's template rendered by llama_chat_apply_template for one user message.
# expected.tsv there: file, mode (text/chat), prompt, prompt ids, generated ids.
#
# Environment: LLAMA_DIR (default ~/.cache/hearth-peers/llama.cpp, built: bin/ and gguf-py/),
# LLAMA_COMMIT (the commit it was built from, recorded in expected.tsv; default c392e509),
# DATA (default ../shared/data: run it from the repository root of a checkout beside shared/).
set -euo pipefail
OUT=${1:-tests/fixtures/gguf}
OUT_FAMILIES=${OUT_FAMILIES:-tests/fixtures/gguf-families}
LLAMA_DIR=${LLAMA_DIR:-$HOME/.cache/hearth-peers/llama.cpp}
B=$LLAMA_DIR/build/bin
LLAMA_COMMIT=${LLAMA_COMMIT:-c392e509}
DATA=${DATA:-../shared/data}
N=64
mkdir -p "$OUT"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
S=$DATA/models/stories260K
"$B/llama-convert-llama2c-to-ggml" --copy-vocab-from-model "$S/tok512.bin" \
  --llama2c-model "$S/stories260K.bin" --llama2c-output-model "$T/stories.gguf" > /dev/null 2>&1
PYTHONPATH=$LLAMA_DIR/gguf-py /usr/bin/python3 "$(dirname "$0")/gguf_random_llama.py" \
  "$T/stories.gguf" "$T/random.gguf" 1
files=()
for t in F16 BF16; do
  "$B/llama-quantize" "$T/stories.gguf" "$OUT/stories260K-$t.gguf" "$t" 1 > "$T/q.log" 2>&1
  files+=("stories260K-$t.gguf")
done
for t in Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q4_K Q5_K Q6_K; do
  "$B/llama-quantize" --pure "$T/random.gguf" "$OUT/random256-$t.gguf" "$t" 1 > "$T/q.log" 2>&1
  files+=("random256-$t.gguf")
done
prompts=("Once upon a time" "The little dog" "Lily wanted to" "One day, a big")
{
  printf '# llama.cpp %s: llama-cli -m FILE -p PROMPT -n %d --temp 0 --ignore-eos -no-cnv --no-warmup -t 1 -lv 1\n' \
    "$LLAMA_COMMIT" $((N + 1))
  printf '# file\tprompt\tprompt ids\tgenerated ids (greedy, %d at most)\n' $N
  for f in "${files[@]}"; do
    for p in "${prompts[@]}"; do
      out=$("$B/llama-cli" -m "$OUT/$f" -p "$p" -n $((N + 1)) --temp 0 --ignore-eos -no-cnv \
              --no-warmup -t 1 -lv 1 2>&1 > "$T/stdout")
      # each id follows its quoted piece: "':ID" before ", '" or " ]"
      ids=$(printf '%s\n' "$out" | grep '^eval: \[' |
              while IFS= read -r l; do grep -oP "':\K[0-9]+(?=, '| \]$)" <<< "$l" | tr '\n' ' '; echo; done)
      prompt_ids=$(printf '%s\n' "$ids" | head -1)
      gen=$(printf '%s\n' "$ids" | tail -n +2 | head -n $N | tr '\n' ' ')
      printf '%s\t%s\t%s\t%s\n' "$f" "$p" "$prompt_ids" "$(echo $gen)"
    done
  done
} > "$OUT/expected.tsv"
ls -l "$OUT"

# ---- the model families
mkdir -p "$OUT_FAMILIES"
cc -O2 "$(dirname "$0")/llamacpp_ref.c" -I"$LLAMA_DIR/include" -I"$LLAMA_DIR/ggml/include" \
  -L"$B" -lllama -Wl,-rpath,"$B" -o "$T/llamacpp_ref"
ffiles=()
for a in llama qwen2 phi3 gemma2; do
  PYTHONPATH=$LLAMA_DIR/gguf-py /usr/bin/python3 "$(dirname "$0")/gguf_random_llama.py" \
    "$LLAMA_DIR/models/ggml-vocab-llama-spm.gguf" "$T/$a.gguf" 1 "$a" "$LLAMA_DIR/models/templates"
  for t in F16 Q8_0; do
    "$B/llama-quantize" "$T/$a.gguf" "$OUT_FAMILIES/$a-$t.gguf" "$t" 1 > "$T/q.log" 2>&1
    ffiles+=("$a-$t.gguf")
  done
done
{
  printf '# llama.cpp %s: tools/llamacpp_ref greedy FILE %d MODE PROMPT (libllama; 1 thread, context 256)\n' \
    "$LLAMA_COMMIT" $N
  printf '# file\tmode\tprompt\tprompt ids\tgenerated ids (greedy, end-of-generation tokens never chosen)\n'
  for f in "${ffiles[@]}"; do
    for mp in "text:Once upon a time" "text:The little dog" "chat:Hello, who are you?"; do
      mode=${mp%%:*} p=${mp#*:}
      out=$("$T/llamacpp_ref" greedy "$OUT_FAMILIES/$f" $N "$mode" "$p")
      printf '%s\t%s\t%s\t%s\t%s\n' "$f" "$mode" "$p" "$(sed -n 1p <<< "$out")" "$(sed -n 2p <<< "$out")"
    done
  done
} > "$OUT_FAMILIES/expected.tsv"
ls -l "$OUT_FAMILIES"
