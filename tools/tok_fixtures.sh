#!/bin/bash
# tools/tok_fixtures.sh: regenerates tests/fixtures/tok/: small vocabulary-only GGUFs (one per
# pre-tokenizer type and SentencePiece), the texts, the ids llama.cpp's llama-tokenize gives
# for each text (--no-escape: the bytes as they are) with and without parse_special (BOS/EOS
# as the vocabulary says: NAME.ids), and the special ids its loader settles on (NAME.special:
# BOS, EOS, EOT, EOM and every EOG id, from its print_info lines), which
# tests/tokenizer/test_tokenizer.c (test_llama_fixtures) compares hearth's against.
#   LLAMA_CPP=~/.cache/hearth-peers/llama.cpp tools/tok_fixtures.sh
# Sources: the vocabularies in $LLAMA_CPP/models, trimmed by tools/gguf_vocab_fixture.py; the
# llama-bpe, qwen2, smollm, bloom, viking and tekken ones are GPT-2's tokens and merges under that pre-tokenizer, with
# those families' special tokens (llama.cpp then applies that pre-tokenizer's split).
set -eu
LLAMA_CPP=${LLAMA_CPP:-$HOME/.cache/hearth-peers/llama.cpp}
M=$LLAMA_CPP/models
TOK=$LLAMA_CPP/build/bin/llama-tokenize
cd "$(dirname "$0")/.."
D=tests/fixtures/tok
rm -rf "$D"
mkdir -p "$D/texts"
fx() { /usr/bin/python3 tools/gguf_vocab_fixture.py "$@" >/dev/null; }
fx "$M/ggml-vocab-gpt-2.gguf" "$D/gpt-2.gguf" --keep 3000
fx "$M/ggml-vocab-gpt-2.gguf" "$D/llama-bpe.gguf" --keep 3000 --pre llama-bpe \
  --name "Llama 3 (synthetic: GPT-2 tokens)" \
  --add '<|begin_of_text|>:control' --add '<|end_of_text|>:control' \
  --add '<|start_header_id|>:control' --add '<|end_header_id|>:control' \
  --add '<|eot_id|>:control' --add '<|eom_id|>:control' --add '<|python_tag|>:control' \
  --key 'tokenizer.ggml.bos_token_id=<|begin_of_text|>' \
  --key 'tokenizer.ggml.eos_token_id=<|eot_id|>'
fx "$M/ggml-vocab-gpt-2.gguf" "$D/qwen2.gguf" --keep 3000 --pre qwen2 \
  --name "Qwen2.5 (synthetic: GPT-2 tokens)" \
  --add '<|im_start|>:control' --add '<|im_end|>:control' --add '<|fim_prefix|>:control' \
  --add '<|fim_pad|>:control' --add '<|repo_name|>:control' --add '<|file_sep|>:control' \
  --add '<tool_call>:user' \
  --key 'tokenizer.ggml.eos_token_id=<|im_end|>' \
  --key 'tokenizer.ggml.bos_token_id=<|endoftext|>' --key 'tokenizer.ggml.add_bos_token=false'
fx "$M/ggml-vocab-gpt-2.gguf" "$D/smollm.gguf" --keep 3000 --pre smollm \
  --name "SmolLM (synthetic: GPT-2 tokens)" \
  --add '<|im_start|>:control' --add '<|im_end|>:control'
for pre in bloom viking tekken; do
  fx "$M/ggml-vocab-gpt-2.gguf" "$D/$pre.gguf" --keep 3000 --pre $pre --name "$pre (synthetic: GPT-2 tokens)"
done
for v in starcoder refact mpt falcon gpt-neox deepseek-coder; do
  fx "$M/ggml-vocab-$v.gguf" "$D/$v.gguf" --keep 3000
done
fx "$M/ggml-vocab-llama-spm.gguf" "$D/llama-spm.gguf" --keep 6000
fx "$M/ggml-vocab-phi-3.gguf" "$D/phi-3.gguf" --keep 6000
/usr/bin/python3 - "$D/texts" <<'PY'
import sys
texts = [
    b"Hello world",
    b" Hello World! How are you?",
    b"def fib(n):\n    if n < 2:\n        return n\n    return fib(n-1) + fib(n-2)  # recursion\n\n\tprint(f'{fib(10)=}')\n",
    b"int main(void) { for (int i = 0; i < 10; i++) printf(\"%d\\n\", i*i); return 0; }",
    b"1 12 123 1234 12345 123456 1234567 3.14159 -42 1,000,000 0x1F 2024-12-07 \xd9\xa1\xd9\xa2\xd9\xa3 \xe2\x85\xab",
    "日本語のテキストです。中文测试，标点符号！한국어 텍스트".encode(),
    "emoji 😀👍🏽 🇫🇷 ❤️ 👨‍👩‍👧 🦀".encode(),
    b"   leading  and trailing   \n\n\n  \r\n  x  \t\t\n\n \n",
    b"I'm you're he'll they've we'd it's DON'T I'M YOU'RE 'tis",
    b"invalid \xff\xfe bytes \xc3 here \xe2\x82 and \xf0\x9f\x98 cut, overlong \xc0\xaf, \xed\xa0\x80",
    "naïve café Ünïcödé ﬁ ß Ωμέγα Привет мир العربية".encode(),
    "tabs\t\tand\u00a0nbsp\u3000ideographic\u2028line sep\u0085nel\ufeffbom".encode(),
    b"$100 + 20% = <html> ~tilde~ `code` |pipe| ^caret^ @user #tag &amp; ...!?",
    b"<|endoftext|>Hello<|endoftext|> <s>text</s> <unk>",
    b"<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    b"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    b"<|user|>\nHello <|end|>\n<|assistant|>\n Hi!<|end|>\n<|system|> sys",
    b"<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nhi [/INST]",
    b"<tool_call> <|fim_prefix|>a<|fim_pad|> <|im_end|><|im_end|>",
    b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbb",
    b"\n",
    b" ",
    b"    ",
]
for i, t in enumerate(texts):
    open('%s/%02d.txt' % (sys.argv[1], i), 'wb').write(t)
PY
for g in "$D"/*.gguf; do
  n=$(basename "$g" .gguf)
  out="$D/$n.ids"
  echo "# $n: llama-tokenize --ids (add_special), per text: 'FILE special|plain: IDS'" >"$out"
  # the special ids llama.cpp's loader settles on (its print_info lines): BOS, EOS, EOT, EOM, EOG
  "$TOK" -m "$g" -p x 2>&1 | grep -E "print_info: (BOS|EOS|EOT|EOM|EOG) token" |
    sed -E 's/print_info: ([A-Z]+) token *= ([0-9]+).*/\1 \2/' >"$D/$n.special"
  for f in "$D"/texts/*.txt; do
    s=$("$TOK" -m "$g" -f "$f" --ids --no-escape --log-disable 2>/dev/null | tail -1 | tr -d '[],')
    p=$("$TOK" -m "$g" -f "$f" --ids --no-escape --log-disable --no-parse-special 2>/dev/null | tail -1 | tr -d '[],')
    echo "$(basename "$f") special: $s" >>"$out"
    echo "$(basename "$f") plain: $p" >>"$out"
  done
done
# llama.cpp's own test vectors for one full vocabulary (SentencePiece, 0.7 MB): its texts and
# the ids its test-tokenizer-0 expects (parse_special, no BOS)
mkdir -p "$D/vectors"
cp "$M/ggml-vocab-llama-spm.gguf" "$M/ggml-vocab-llama-spm.gguf.inp" \
  "$M/ggml-vocab-llama-spm.gguf.out" "$D/vectors/"
du -sh "$D"
