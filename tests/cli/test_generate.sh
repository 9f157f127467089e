#!/usr/bin/env bash
# tests/cli/test_generate.sh: `hearth generate` as a user runs it, on tiny runs trained here:
# a BPE run (tokenizer trained, shards prepared: the run keeps tokenizer.htok) and a byte-level
# one. Same seed same text, greedy is deterministic, an exported file (safetensors, GGUF) generates the same text as
# its run, stop strings, the timing line, and bad input (clear message, non-zero exit).
# Usage: test_generate.sh PATH/TO/hearth
set -u
H=${1:?usage: test_generate.sh path/to/hearth}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
export OMP_NUM_THREADS=2

for i in $(seq 300); do
  echo "{\"text\": \"to be or not to be, that is the question $((i % 7)). whether tis nobler $i\"}"
done > "$T/corpus.jsonl"
for i in $(seq 200); do echo "the quick brown fox jumps over the lazy dog $((i % 5))"; done > "$T/bytes.txt"

# expect_fail NAME PATTERN ARGS...: exit status non-zero and stderr matching PATTERN
expect_fail() {
  local name=$1 pat=$2; shift 2
  if "$H" "$@" > "$T/out" 2> "$T/err"; then bad "$name: exited 0"; return; fi
  grep -qiE -- "$pat" "$T/err" || { bad "$name: stderr lacks /$pat/: $(cat "$T/err")"; return; }
  ok
}

run() { "$H" "$@" > "$T/out" 2> "$T/err" || { bad "$*: exit $?: $(cat "$T/err")"; return 1; }; }

run tokenizer train --vocab-size 300 --special '<|endoftext|>' --out "$T/v.htok" "$T/corpus.jsonl" &&
run prepare --vocab "$T/v.htok" --out "$T/data" --val-frac 0.1 "$T/corpus.jsonl" &&
run train --data "$T/data" --out "$T/run" --steps 30 --batch 4 --seq 32 --ckpt-every 30 --sample 0 \
  --threads 2 || { echo "setup failed"; exit 1; }
[ -f "$T/run/tokenizer.htok" ] && cmp -s "$T/run/tokenizer.htok" "$T/data/vocab.htok" && ok ||
  bad "train did not keep the shards' tokenizer as run/tokenizer.htok"

G=(generate --model "$T/run" --max-tokens 24 --threads 2)
# same seed, same text; the timing line on stderr
if run "${G[@]}" --seed 7 --temperature 1.2 --top-k 0 --top-p 1 --min-p 0 "to be"; then
  cp "$T/out" "$T/s7a"
  grep -qE "prompt [0-9]+ tokens, generated [0-9]+ tokens .*TTFT [0-9.]+ ms, [0-9.]+ tokens/s" "$T/err" &&
    ok || bad "no timing line: $(cat "$T/err")"
fi
run "${G[@]}" --seed 7 --temperature 1.2 --top-k 0 --top-p 1 --min-p 0 "to be" && cp "$T/out" "$T/s7b"
run "${G[@]}" --seed 8 --temperature 1.2 --top-k 0 --top-p 1 --min-p 0 "to be" && cp "$T/out" "$T/s8"
[ -s "$T/s7a" ] && cmp -s "$T/s7a" "$T/s7b" && ok || bad "same seed gave different text"
cmp -s "$T/s7a" "$T/s8" && bad "seeds 7 and 8 gave the same text" || ok
# greedy: deterministic, and max-tokens is honoured
run "${G[@]}" --temperature 0 "to be" && cp "$T/out" "$T/g1"
run "${G[@]}" --temperature 0 "to be" && cp "$T/out" "$T/g2"
cmp -s "$T/g1" "$T/g2" && ok || bad "greedy runs differ"
run generate --model "$T/run" --temperature 0 --max-tokens 5 "to be" &&
  { grep -q "generated 5 tokens (length)" "$T/err" && ok || bad "max-tokens 5: $(cat "$T/err")"; }
# an exported file (its tokenizer beside it) generates the same text as its run
run export "$T/run" --format safetensors -o "$T/model.safetensors" &&
  { [ -f "$T/model.htok" ] && ok || bad "export did not write model.htok"; }
run generate --model "$T/model.safetensors" --max-tokens 24 --temperature 0 "to be" &&
  { cmp -s "$T/out" "$T/g1" && ok || bad "the exported model generates other text"; }
# the same as GGUF (llama.cpp's layout, the tokenizer inside): the same text again; a GGUF of
# the wrong kind or cut short is refused with its reason
run export "$T/run" --format gguf -o "$T/model.gguf" &&
  run generate --model "$T/model.gguf" --max-tokens 24 --temperature 0 "to be" &&
  { cmp -s "$T/out" "$T/g1" && ok || bad "the GGUF export generates other text"; }
head -c 5000 "$T/model.gguf" > "$T/cut.gguf"
expect_fail "generate: truncated GGUF" "cut.gguf.*(corrupt|past the end|truncated)" generate --model "$T/cut.gguf" "to be"
# the KV cache in F32 gives the same greedy text here; a kv type hearth has not is refused;
# exporting a GGUF model again is refused (its weights are typed, not hearth's F32 parameters)
run generate --model "$T/model.gguf" --max-tokens 24 --temperature 0 --kv-type f32 "to be" &&
  { cmp -s "$T/out" "$T/g1" && ok || bad "--kv-type f32 generates other text"; }
expect_fail "generate: --kv-type q8" "--kv-type must be f16 or f32, got 'q8'" generate --model "$T/model.gguf" --kv-type q8 "to be"
expect_fail "export: a GGUF model" "is a GGUF file already" export "$T/model.gguf" --format gguf -o "$T/again.gguf"
# hearth quantize: the F32 GGUF export to Q8_0 and Q4_K (rows that do not fit 256 fall back, named),
# each of which hearth loads and runs; types hearth does not write are refused by name
run quantize "$T/model.gguf" "$T/q8.gguf" q8_0 &&
  run generate --model "$T/q8.gguf" --max-tokens 8 --temperature 0 "to be" && ok
run quantize "$T/model.gguf" "$T/q4k.gguf" Q4_K &&
  run generate --model "$T/q4k.gguf" --max-tokens 8 --temperature 0 "to be" && ok
# the run itself quantized (the same code as export --type): F16 gives the F32 text exactly; Q8_0
# from the run, from its F32 GGUF, and by export --type are the same file's tensors (same text);
# Q4_K_M names its fallbacks (rows of this width fit no K-quant block) and still generates
run quantize "$T/run" "$T/f16.gguf" F16 &&
  run generate --model "$T/f16.gguf" --max-tokens 24 --temperature 0 "to be" &&
  { cmp -s "$T/out" "$T/g1" && ok || bad "the F16 quantized run generates other text"; }
run quantize "$T/run" "$T/rq8.gguf" Q8_0 && run generate --model "$T/rq8.gguf" --max-tokens 24 --temperature 0 "to be" &&
  cp "$T/out" "$T/gq8" && run export "$T/run" -o "$T/eq8.gguf" --type q8_0 &&
  run generate --model "$T/eq8.gguf" --max-tokens 24 --temperature 0 "to be" &&
  { cmp -s "$T/out" "$T/gq8" && ok || bad "export --type q8_0 and quantize RUN Q8_0 differ"; } &&
  run generate --model "$T/q8.gguf" --max-tokens 24 --temperature 0 "to be" &&
  { cmp -s "$T/out" "$T/gq8" && ok || bad "quantize of the GGUF and of the run differ (Q8_0)"; } &&
  run quantize "$T/model.safetensors" "$T/sq8.gguf" Q8_0 &&
  run generate --model "$T/sq8.gguf" --max-tokens 24 --temperature 0 "to be" &&
  { cmp -s "$T/out" "$T/gq8" && ok || bad "quantize of the safetensors export differs (Q8_0)"; }
run quantize "$T/run" "$T/rq4km.gguf" q4_k_m &&
  { grep -q "no whole number of Q4_K blocks (256): Q5_0" "$T/err" && ok || bad "Q4_K_M: no fallback named: $(cat "$T/err")"; } &&
  run generate --model "$T/rq4km.gguf" --max-tokens 24 --temperature 0 "to be" &&
  { grep -q "generated 24 tokens" "$T/err" && ok || bad "Q4_K_M: $(cat "$T/err")"; }
expect_fail "quantize: unknown type" "unknown type 'q9_9' \(known: F32, F16" quantize "$T/run" "$T/x.gguf" q9_9
expect_fail "export --type to safetensors" "--type is for --format gguf" export "$T/run" -o "$T/x.safetensors" --type q8_0
expect_fail "quantize: IQ2_XS" "IQ2_XS is not supported" quantize "$T/model.gguf" "$T/x.gguf" iq2_xs
expect_fail "quantize: a quantized input" "is Q8_0: quantize starts from F32, F16 or BF16" quantize "$T/q8.gguf" "$T/x.gguf" q4_0
expect_fail "quantize: a quantized run" "is a GGUF file already|is Q8_0" quantize "$T/rq8.gguf" "$T/x.gguf" f16
expect_fail "export: unknown format" "unknown format 'onnx' \(known: safetensors, gguf\)" export "$T/run" --format onnx -o "$T/x"
# a stop string: the text ends before its first occurrence
first=$(head -c 200 "$T/g1" | tr -d '\n' | cut -c3-4)
if [ ${#first} -eq 2 ]; then
  run "${G[@]}" --temperature 0 --stop "$first" "to be"
  want=$(python3 -c 'import sys; t=open(sys.argv[1]).read(); print(t[:t.find(sys.argv[2])], end="")' "$T/g1" "$first")
  [ "$(cat "$T/out")" = "$want" ] && grep -q "(stop)" "$T/err" && ok ||
    bad "--stop '$first': got '$(cat "$T/out")', want '$want'"
fi
# a byte-level run needs no tokenizer
run train --data "$T/bytes.txt" --out "$T/brun" --steps 10 --batch 2 --seq 32 --ckpt-every 10 --sample 0 &&
  run generate --model "$T/brun" --max-tokens 10 --temperature 0 "the quick" &&
  { grep -q "generated 10 tokens" "$T/err" && ok || bad "byte model: $(cat "$T/err")"; }

# the Llama family, and --parallel: N completions batched, the first one the same as alone
run train --data "$T/bytes.txt" --out "$T/lrun" --preset llama-tiny --steps 10 --batch 2 --seq 32 \
  --ckpt-every 10 --sample 0 &&
  run generate --model "$T/lrun" --max-tokens 12 --seed 5 "the quick" && cp "$T/out" "$T/l1" &&
  run generate --model "$T/lrun" --max-tokens 12 --seed 5 --parallel 3 "the quick" &&
  { head -c "$(wc -c < "$T/l1")" "$T/out" | cmp -s - "$T/l1" &&
    grep -q -- "--- completion 3 (seed 7) ---" "$T/out" &&
    grep -qE "3 sequences batched: [0-9]+ tokens generated .* tokens/s aggregate" "$T/err" && ok ||
    bad "--parallel 3: $(cat "$T/out") / $(cat "$T/err")"; }

# a tied Llama has no output.weight: its token_embd is typed as the output (Q4_0 file: Q6_K, whose
# 256 does not fit rows of 64: Q8_0, named), from the run and from its F32 GGUF alike, and the
# two files generate the same text
run train --data "$T/bytes.txt" --out "$T/trun" --preset llama-tiny --tied 1 --steps 5 --batch 2 \
  --seq 32 --ckpt-every 5 --sample 0 && run export "$T/trun" -o "$T/tied.gguf" &&
  for src in "$T/trun" "$T/tied.gguf"; do
    run quantize "$src" "$T/tq4.gguf" q4_0 &&
      { grep -q "^token_embd.weight: rows of 64 are no whole number of Q6_K blocks (256): Q8_0" "$T/err" &&
          ok || bad "tied Q4_0 from $src: token_embd not typed as the output: $(cat "$T/err")"; } &&
      run generate --model "$T/tq4.gguf" --max-tokens 12 --temperature 0 "the quick" &&
      cp "$T/out" "$T/tq4-$(basename "$src").txt"
  done
cmp -s "$T/tq4-trun.txt" "$T/tq4-tied.gguf.txt" && ok || bad "tied Q4_0: the run and its GGUF quantize differently"

# bad input
expect_fail "no model" "--model PATH is required" generate "hello"
expect_fail "no prompt" "no prompt" generate --model "$T/run"
expect_fail "missing model" "cannot open model .*nope" generate --model "$T/nope" "hello"
expect_fail "not a model" "bytes.txt is a text file, not a model" generate --model "$T/bytes.txt" "hello"
expect_fail "no checkpoint" "no checkpoint" generate --model "$T/data" "hello"
expect_fail "unknown option" "unknown option '--frob'" generate --model "$T/run" --frob 1 "hello"
expect_fail "bad temperature" "--temperature must be a number" generate --model "$T/run" --temperature -1 "x"
expect_fail "bad top-p" "--top-p must be a number" generate --model "$T/run" --top-p 2 "x"
expect_fail "bad max-tokens" "--max-tokens must be an integer" generate --model "$T/run" --max-tokens x "x"
expect_fail "two prompts" "one prompt only" generate --model "$T/run" "a" "b"
expect_fail "prompt too long" "the prompt has [0-9]+ tokens but the context holds 4" \
  generate --model "$T/run" --ctx 4 "to be or not to be, that is the question"
expect_fail "ctx too large" "context must be in \[2, 128\]" generate --model "$T/run" --ctx 4096 "x"
expect_fail "missing tokenizer" "nope.htok" generate --model "$T/run" --tokenizer "$T/nope.htok" "x"

# a file of the wrong kind as the model is named for what it is (not read as safetensors)
expect_fail "vocabulary as model" "v.htok is a hearth vocabulary \(HTOK\), not a model; pass it as --tokenizer" generate --model "$T/v.htok" "x"
shard=$(ls "$T/data"/train_*.bin | head -1)
expect_fail "shard as model" "is a hearth token shard \(HSHD\), not a model" generate --model "$shard" "x"
if python3 -c 'import zipfile, pickle, sys
with zipfile.ZipFile(sys.argv[1] + "/model.pt", "w") as z:
    z.writestr("archive/data.pkl", pickle.dumps({"w": 1}, protocol=2))
open(sys.argv[1] + "/model.bin", "wb").write(pickle.dumps({"w": 1}, protocol=2))' "$T"; then
  expect_fail "PyTorch zip as model" "model.pt is a PyTorch checkpoint .*not a model.*safetensors and GGUF" generate --model "$T/model.pt" "x"
  expect_fail "pickle as model" "model.bin is a Python pickle" generate --model "$T/model.bin" "x"
fi

# --tokenizer: the model's own vocabulary is accepted (the same text); one that is not the
# model's is refused, whether the run (trainer.json), the GGUF file or the tokenizer beside an
# export records it, and so is one larger than the model's embedding
for m in "$T/run" "$T/model.safetensors" "$T/model.gguf"; do
  run generate --model "$m" --tokenizer "$T/v.htok" --max-tokens 24 --temperature 0 "to be" &&
    { cmp -s "$T/out" "$T/g1" && ok || bad "--tokenizer with $(basename "$m")'s own vocabulary: other text"; }
done
run generate --model "$T/run" --tokenizer "$T/model.gguf" --max-tokens 24 --temperature 0 "to be" &&
  { cmp -s "$T/out" "$T/g1" && ok || bad "--tokenizer the GGUF export's vocabulary: other text"; }
run tokenizer train --vocab-size 300 --out "$T/other.htok" "$T/bytes.txt" &&
  run tokenizer train --vocab-size 400 --out "$T/big.htok" "$T/corpus.jsonl" || bad "setup: other vocabularies"
for m in "$T/run" "$T/run/step_00000030" "$T/model.safetensors" "$T/model.gguf"; do
  expect_fail "another vocabulary for $(basename "$m")" "the tokenizer .*other.htok \(bpe:gpt2:[0-9]+:[0-9a-f]+\) is not the model's: .* was made with the vocabulary bpe:gpt-?2:300:" \
    generate --model "$m" --tokenizer "$T/other.htok" "x"
done
expect_fail "a larger vocabulary" "is not the model's" generate --model "$T/run" --tokenizer "$T/big.htok" "x"
# with nothing recorded (an export without its tokenizer beside it) the size still counts
mkdir -p "$T/alone" && cp "$T/model.safetensors" "$T/alone/"
expect_fail "a larger vocabulary, nothing recorded" "the tokenizer has 400 tokens but the model's vocabulary is 300" \
  generate --model "$T/alone/model.safetensors" --tokenizer "$T/big.htok" "x"
run generate --model "$T/alone/model.safetensors" --tokenizer "$T/v.htok" -n 24 --temperature 0 "to be" &&
  { cmp -s "$T/out" "$T/g1" && ok || bad "an export without its tokenizer, given it: other text"; }
expect_fail "a vocabulary for a byte run" "is not the model's: .* was made with the vocabulary bpe:gpt2:256:" generate --model "$T/brun" --tokenizer "$T/v.htok" "x"

# llama.cpp's short options mean the same as the long ones; --name=value works too
run generate -m "$T/run" -n 24 -t 2 --temperature 0 -p "to be" &&
  { cmp -s "$T/out" "$T/g1" && ok || bad "-m -n -t -p: other text than the long options"; }
run generate --model="$T/run" --max-tokens=5 --temperature=0 -c 64 -s 3 "to be" &&
  { grep -q "generated 5 tokens (length)" "$T/err" && ok || bad "--max-tokens=5: $(cat "$T/err")"; }
expect_fail "two prompts (-p and an argument)" "one prompt only" generate -m "$T/run" -p "a" "b"
expect_fail "missing value" "--seed needs a value" generate -m "$T/run" "x" --seed
expect_fail "a short option is named as given" "-c/--ctx must be an integer in \[2, 16777216\], got '1'" generate -m "$T/run" -c 1 "x"
expect_fail "unknown short option" "unknown option '-x'" generate -m "$T/run" -x 1 "x"
expect_fail "value of a flag-less range" "--seed must be an integer >= 0, got '-1'" generate -m "$T/run" --seed -1 "x"
expect_fail "stop limit" "--stop is given at most 5 times" generate -m "$T/run" --stop a --stop b --stop c --stop d --stop e --stop f "x"
# --help comes from the option table: each limit stated where it is enforced
"$H" generate --help > "$T/out" 2>&1 && grep -qE -- "^  -n, --max-tokens N .*" "$T/out" &&
  grep -qE -- "--top-p P .*\[1e-09, 1\]$" "$T/out" && grep -qE -- "--top-k K .*\[0, 16777216\]$" "$T/out" && ok ||
  bad "generate --help: $(cat "$T/out")"
for c in train prepare export inspect generate chat serve vstore digits "tokenizer train" "tokenizer encode" \
         "tokenizer decode" "tokenizer import" "tokenizer info"; do
  # shellcheck disable=SC2086
  "$H" $c --help > "$T/out" 2>&1 && grep -q "^usage: hearth $c" "$T/out" && ok || bad "$c --help: $(head -3 "$T/out")"
done
"$H" --version > "$T/out" && grep -qE "^hearth [0-9]+\.[0-9]+\.[0-9]+$" "$T/out" && ok || bad "--version: $(cat "$T/out")"

# export: the format from -o's extension; a name that says neither, or says the other, is refused
run export "$T/run" -o "$T/byext.gguf" && run generate -m "$T/byext.gguf" -n 24 --temperature 0 "to be" &&
  { cmp -s "$T/out" "$T/g1" && ok || bad "export -o x.gguf: not the same model"; }
run export "$T/run" -o "$T/byext.safetensors" && head -c 8 "$T/byext.safetensors" | od -An -tu8 | grep -qE "^ +[0-9]+$" &&
  run inspect "$T/byext.safetensors" && grep -q "safetensors" "$T/out" && ok || bad "export -o x.safetensors"
expect_fail "export: no extension" "which format\? -o .*model.bin has neither .safetensors nor .gguf" export "$T/run" -o "$T/model.bin"
expect_fail "export: format and name disagree" "--format safetensors but -o .*x.gguf names a gguf file" export "$T/run" --format safetensors -o "$T/x.gguf"

echo "test_generate: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
