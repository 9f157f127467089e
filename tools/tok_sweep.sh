#!/bin/bash
# tools/tok_sweep.sh VOCAB.gguf [HEARTH]: every code point from U+0080 up, in contexts that
# tell its class (letter, number, other, whitespace: "x?x 1?1 ?'s"), 4096 per chunk, encoded
# by llama.cpp's llama-tokenize (at $LLAMA_CPP, default ~/.cache/hearth-peers/llama.cpp) and
# by `hearth tokenizer encode`; prints the chunks whose ids differ. A manual check (about a
# minute per vocabulary). Known result: only the chunks holding code points assigned in
# Unicode 15.0-15.1 differ (llama.cpp's class tables are 15.1, hearth's 14.0).
set -eu
V=$1
H=${2:-build/hearth}
LLAMA_CPP=${LLAMA_CPP:-$HOME/.cache/hearth-peers/llama.cpp}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
/usr/bin/python3 - "$D" <<'PY'
import sys
for start in range(0x80, 0x110000, 4096):
    parts = [f"x{chr(c)}x 1{chr(c)}1 {chr(c)}'s\n" for c in range(start, min(start + 4096, 0x110000))
             if not 0xD800 <= c < 0xE000]
    open('%s/c%06x.txt' % (sys.argv[1], start), 'wb').write(''.join(parts).encode())
PY
n=0
for f in "$D"/c*.txt; do
  a=$("$LLAMA_CPP/build/bin/llama-tokenize" -m "$V" -f "$f" --ids --no-escape --log-disable \
    --no-parse-special 2>/dev/null | tail -1 | tr -d '[],')
  b=$("$H" tokenizer encode --vocab "$V" --add-special <"$f")
  if [ "$a" != "$b" ]; then
    n=$((n + 1))
    echo "differs: U+$(basename "$f" .txt | cut -c2-) .. +4095"
  fi
done
echo "$(basename "$V"): $n of $(ls "$D" | wc -l) chunks differ"
