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

# bad input
expect_fail "no model" "--model PATH is required" generate "hello"
expect_fail "no prompt" "no prompt" generate --model "$T/run"
expect_fail "missing model" "cannot open model .*nope" generate --model "$T/nope" "hello"
expect_fail "not a model" "safetensors|header|malformed|short" generate --model "$T/bytes.txt" "hello"
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

echo "test_generate: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
