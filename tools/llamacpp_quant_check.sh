#!/usr/bin/env bash
# tools/llamacpp_quant_check.sh: does llama.cpp run what `hearth quantize` writes, and with the
# same greedy text as hearth? For each file type, hearth quantizes two F32 models:
#  - stories260K (karpathy's llama2.c model) converted by llama-convert-llama2c-to-ggml, as
#    tools/gguf_parity_fixtures.sh does: a real pretrained Llama, but ffn_down's rows are 172
#    long (no multiple of 32), so those matrices fall back (to F16, as llama-quantize would);
#  - tools/gguf_random_llama.py's random width-256 Llama, whose every matrix takes a K-quant.
# Then llama-cli loads each file and decodes N tokens greedily (--temp 0, 1 thread,
# --ignore-eos), hearth generate decodes the same file (--temperature 0, 1 thread), and the two
# continuations are compared as text. A line per file: whether llama.cpp loaded it, whether the
# texts agree, and else how many characters they share. A random model's logits are close
# together, so a free-running decode diverges at the first near-tie: disagreement there is no
# bug (teacher-forced agreement within a tolerance is tests/infer/test_gguf_parity.c's check).
# Where the texts part, hearth decodes again with --kv-type f32 ("kv f32: ...").
# For the random model, llama-quantize also quantizes the same F32 file to the same type, and
# the last column says whether every tensor got the same ggml type from both (the per-tensor
# mix of Q4_K_M & co.) and whether the quantized bytes are the same; stories260K's 172-long rows make this llama-quantize refuse it.
#
#   tools/llamacpp_quant_check.sh [HEARTH]         (default build/hearth)
#
# Environment: LLAMA_DIR (default ~/.cache/hearth-peers/llama.cpp, built), DATA (default
# ../shared/data), N (tokens, default 64), TYPES (default: every type hearth writes).
set -uo pipefail
H=${1:-build/hearth}
LLAMA_DIR=${LLAMA_DIR:-$HOME/.cache/hearth-peers/llama.cpp}
B=$LLAMA_DIR/build/bin
DATA=${DATA:-../shared/data}
N=${N:-64}
TYPES=${TYPES:-F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
S=$DATA/models/stories260K
"$B/llama-convert-llama2c-to-ggml" --copy-vocab-from-model "$S/tok512.bin" \
  --llama2c-model "$S/stories260K.bin" --llama2c-output-model "$T/stories.gguf" > /dev/null 2>&1 ||
  { echo "llama-convert-llama2c-to-ggml failed"; exit 1; }
PYTHONPATH=$LLAMA_DIR/gguf-py /usr/bin/python3 "$(dirname "$0")/gguf_random_llama.py" \
  "$T/stories.gguf" "$T/random.gguf" 1 > /dev/null || { echo "gguf_random_llama.py failed"; exit 1; }
prompt="Once upon a time"
printf '%-8s %-8s %-9s %-6s %-56s %s\n' type model fallbacks llama greedy-text-"($N tokens)" \
  "types as llama-quantize"
for t in $TYPES; do
  for m in stories random; do
    f=$T/$m-$t.gguf
    if ! "$H" quantize "$T/$m.gguf" "$f" "$t" > "$T/q.out" 2> "$T/q.err"; then
      printf '%-8s %-8s hearth quantize failed: %s\n' "$t" "$m" "$(head -1 "$T/q.err")"
      continue
    fi
    nfb=$(grep -c 'no whole number' "$T/q.err")
    if ! timeout 120 "$B/llama-cli" -m "$f" -p "$prompt" -n "$N" --temp 0 --ignore-eos -no-cnv \
      --no-warmup -t 1 > "$T/l.txt" 2> "$T/l.err"; then
      printf '%-8s %-8s %-9s %-6s %s\n' "$t" "$m" "$nfb" "FAILS" "$(grep -m1 -i error "$T/l.err")"
      continue
    fi
    # llama-cli echoes the prompt (after a space); hearth prints the continuation only
    compare() {
      /usr/bin/python3 - "$T/l.txt" "$T/h.txt" "$prompt" << 'PY'
import sys
l = open(sys.argv[1], "rb").read().decode("utf-8", "replace").rstrip("\n")
h = open(sys.argv[2], "rb").read().decode("utf-8", "replace").rstrip("\n")
p = sys.argv[3]
i = l.find(p)
l = l[i + len(p):] if i >= 0 else l
if l == h:
    print("identical (%d chars)" % len(h))
else:
    k = 0
    while k < min(len(l), len(h)) and l[k] == h[k]:
        k += 1
    print("differ after %d of %d chars" % (k, max(len(l), len(h))))
PY
    }
    "$H" generate --model "$f" -n "$N" --temperature 0 --threads 1 "$prompt" > "$T/h.txt" 2> /dev/null
    verdict=$(compare)
    # where they part, hearth again with its KV cache in F32 (llama-cli's is F16 here)
    if [ "${verdict#identical}" = "$verdict" ]; then
      "$H" generate --model "$f" -n "$N" --temperature 0 --threads 1 --kv-type f32 "$prompt" \
        > "$T/h.txt" 2> /dev/null
      verdict="$verdict; kv f32: $(compare | sed 's/ chars//')"
    fi
    types=-
    if [ "$m" = random ] && "$B/llama-quantize" "$T/$m.gguf" "$T/lq.gguf" "$t" 1 > /dev/null 2>&1; then
      types=$(PYTHONPATH=$LLAMA_DIR/gguf-py /usr/bin/python3 - "$f" "$T/lq.gguf" << 'PY'
import sys
import gguf
ra, rb = (gguf.GGUFReader(f) for f in sys.argv[1:3])
a, b = ({t.name: t.tensor_type.name for t in r.tensors} for r in (ra, rb))
da, db = ({t.name: bytes(t.data.tobytes()) for t in r.tensors} for r in (ra, rb))
d = [f"{n}: {a[n]} vs {b.get(n)}" for n in a if a[n] != b.get(n)]
nb = sum(da[n] != db.get(n) for n in a)
print("same (" + ", ".join(sorted(set(a.values()))) + "), %s" %
      ("bytes identical" if not nb else "%d tensors' bytes differ" % nb)
      if not d and a.keys() == b.keys() else "differ: " + "; ".join(d))
PY
      )
    fi
    printf '%-8s %-8s %-9s %-6s %-56s %s\n' "$t" "$m" "$nfb" "loads" "$verdict" "$types"
  done
done
