#!/usr/bin/env bash
# tools/llamacpp_parity.sh: hearth and llama.cpp on the same model file. Exports RUN as GGUF
# (hearth export --format gguf), then decodes each prompt greedily with both — hearth from the
# run directory, llama.cpp (llama-cli) from the GGUF file — and compares the texts up to the
# end-of-text token. Any difference in tokenization, weights layout (the Llama RoPE
# permutation), norms or attention shows up as a diverging continuation.
#
#   tools/llamacpp_parity.sh RUN [N_TOKENS]
#
# Environment: HEARTH (default build/hearth), LLAMA_BIN (default
# ~/.cache/hearth-peers/llama.cpp/build/bin; build it as docs/BENCHMARKS.md says).
# Prints one line per prompt and "parity: M of N prompts identical"; exits 1 on any difference.
set -euo pipefail
RUN=${1:?usage: llamacpp_parity.sh RUN [N_TOKENS]}
N=${2:-48}
HEARTH=${HEARTH:-build/hearth}
LLAMA_BIN=${LLAMA_BIN:-$HOME/.cache/hearth-peers/llama.cpp/build/bin}
[ -x "$LLAMA_BIN/llama-cli" ] || { echo "no llama-cli in $LLAMA_BIN" >&2; exit 2; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$HEARTH" export "$RUN" --format gguf -o "$T/model.gguf" > /dev/null
prompts=(
  "You will"
  "The meaning of life is"
  "A man"
  "Q: Why did the chicken cross the road? A:"
  "There is no"
  "Never"
  "If you"
  "The best way to"
  "Life is"
  "In the beginning"
)
same=0
for p in "${prompts[@]}"; do
  h=$("$HEARTH" generate --model "$RUN" --temperature 0 --max-tokens "$N" --threads 2 "$p" 2> /dev/null)
  # llama-cli echoes the prompt, then the continuation, then "[end of text]" at EOS
  l=$("$LLAMA_BIN/llama-cli" -m "$T/model.gguf" -p "$p" -n "$N" --temp 0 -no-cnv --no-warmup \
        -t 2 2> /dev/null)
  l=${l#"$p"}
  l=${l%%" [end of text]"*}
  l=${l%%"[end of text]"*}
  # $( ) drops hearth's trailing newlines; drop llama.cpp's the same way
  while [[ $l == *$'\n' ]]; do l=${l%$'\n'}; done
  if [ "$h" = "$l" ]; then
    same=$((same + 1))
    printf 'same  %-45s -> %q\n' "$p" "${h:0:60}"
  else
    printf 'DIFF  %-45s\n      hearth:    %q\n      llama.cpp: %q\n' "$p" "$h" "$l"
  fi
done
echo "parity: $same of ${#prompts[@]} prompts identical ($N tokens at most, greedy)"
[ "$same" = "${#prompts[@]}" ]
