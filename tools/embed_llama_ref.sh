#!/usr/bin/env bash
# tools/embed_llama_ref.sh: the GGUF parity fixture. Writes the random-weight BERT
# (tools/gguf_random_bert.py, tiny shape, the all-MiniLM vocabulary) to
# tests/fixtures/embed/bert_tiny.gguf and records llama.cpp's llama-embedding vectors (the file's
# mean pooling, L2-normalized, JSON output) for the texts below into
# tests/fixtures/embed/bert_tiny_llama.json, which tests/embed/test_embed.c compares hearth's
# vectors against (cosine >= 0.9999 each).
#   tools/embed_llama_ref.sh [LLAMA_CPP_DIR]   (default ~/.cache/hearth-peers/llama.cpp)
set -euo pipefail
LC=${1:-$HOME/.cache/hearth-peers/llama.cpp}
FX=tests/fixtures/embed
PYTHONPATH=$LC/gguf-py /usr/bin/python3 tools/gguf_random_bert.py $FX/minilm_vocab.txt \
  $FX/bert_tiny.gguf --shape tiny --pooling mean --seed 1
# one text a line; plain ASCII prose and punctuation (llama.cpp's WPM tokenizer agrees with
# Hugging Face's there; tests/fixtures/embed/wordpiece.json covers the rest)
TEXTS=$(cat <<'T'
hello world, this is a test.
The quick brown fox jumps over the lazy dog.
Embeddings map text to vectors; similar texts get similar vectors!
a
What is the capital of France? Paris is the capital and largest city of France.
Retrieval augmented generation (RAG) answers questions from your own documents, citing each source.
unbelievable tokenization of supercalifragilisticexpialidocious words: 12345 and 3.14159
The mitochondria is the powerhouse of the cell, and the cell is the basic unit of life in all living organisms.
T
)
out=$(mktemp)
"$LC/build/bin/llama-embedding" -m $FX/bert_tiny.gguf -p "$TEXTS" --pooling mean \
  --embd-normalize 2 --embd-output-format json -t 2 -c 64 -b 64 -ub 64 2>/dev/null >"$out"
TEXTS="$TEXTS" /usr/bin/python3 - "$out" $FX/bert_tiny_llama.json <<'PY'
import json, os, sys
d = json.load(open(sys.argv[1]))
texts = os.environ["TEXTS"].split("\n")
vecs = [x["embedding"] for x in sorted(d["data"], key=lambda x: x["index"])]
assert len(vecs) == len(texts), (len(vecs), len(texts))
with open(sys.argv[2], "w") as f:
    f.write('{"source": "llama-embedding --pooling mean --embd-normalize 2 (tools/embed_llama_ref.sh)",\n "cases": [\n')
    f.write(",\n".join("  " + json.dumps({"text": t, "embedding": v}) for t, v in zip(texts, vecs)))
    f.write("\n]}\n")
print(f"wrote {sys.argv[2]}: {len(texts)} texts")
PY
rm -f "$out"
