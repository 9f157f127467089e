#!/bin/bash
# tools/tok_llama_vectors.sh [HEARTH]: hearth's tokenizer against llama.cpp's own test vectors
# (models/ggml-vocab-*.gguf.inp/.out in the llama.cpp tree at $LLAMA_CPP, default
# ~/.cache/hearth-peers/llama.cpp): each .inp text, encoded by `hearth tokenizer encode
# --special` (no BOS, parse_special: what llama.cpp's test-tokenizer-0 does), must give the
# .out line. Needs the full vocabularies, so it is a manual check, not part of `make test`.
set -u
H=${1:-build/hearth}
LLAMA_CPP=${LLAMA_CPP:-$HOME/.cache/hearth-peers/llama.cpp}
fail=0
for inp in "$LLAMA_CPP"/models/ggml-vocab-*.gguf.inp; do
  v=${inp%.inp}
  [ -f "$v" ] || continue
  /usr/bin/python3 - "$H" "$v" "$inp" "${v}.out" <<'PY' || fail=1
import subprocess, sys
h, vocab, inp, out = sys.argv[1:]
texts = open(inp, 'rb').read().split(b'\n__ggml_vocab_test__\n')
want = open(out).read().split('\n')
same = diff = 0
for i, t in enumerate(texts):
    if i >= len(want): break
    r = subprocess.run([h, 'tokenizer', 'encode', '--vocab', vocab, '--special'], input=t,
                       capture_output=True)
    got = r.stdout.decode().split() if r.returncode == 0 else ['error:', r.stderr.decode()]
    if got == want[i].split():
        same += 1
    else:
        diff += 1
        print('  differs: %r\n    llama.cpp %s\n    hearth    %s' % (t[:60], want[i][:200], ' '.join(got)[:200]))
name = vocab.split('/')[-1]
print('%s: %d same, %d differ' % (name, same, diff))
sys.exit(1 if diff else 0)
PY
done
exit $fail
