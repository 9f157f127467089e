#!/usr/bin/env bash
# tests/cli/test_tools.sh: `hearth export` and `hearth inspect` as a user runs them: a tiny run
# with checkpoints is exported and inspected; a flipped byte makes inspect say BAD and fail;
# bad arguments fail with a clear message. The exported file is also read by tools/st_read.py,
# a reader written from the safetensors spec (skipped when python3 has no numpy).
# Usage: test_tools.sh PATH/TO/hearth
set -u
H=${1:?usage: test_tools.sh path/to/hearth}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# expect_fail NAME PATTERN ARGS...: exit status non-zero, stderr or stdout matches PATTERN
expect_fail() {
  local name=$1 pat=$2; shift 2
  if "$H" "$@" > "$T/out" 2> "$T/err"; then bad "$name: exited 0"; return; fi
  cat "$T/out" "$T/err" | grep -qiE -- "$pat" || { bad "$name: output lacks /$pat/: $(cat "$T/err")"; return; }
  ok
}

for i in $(seq 200); do echo "to be or not to be, that is the question $((i % 7))"; done > "$T/corpus.txt"
if ! "$H" train --data "$T/corpus.txt" --out "$T/run" --steps 4 --seq 32 --batch 4 --ckpt-every 2 > "$T/train.out" 2>&1; then
  bad "train --ckpt-every failed: $(tail -3 "$T/train.out")"
  echo "tools: $pass passed, $fail failed"; exit 1
fi

# export: the run's newest checkpoint, and a named one; the file says what model it is
if "$H" export "$T/run" --format safetensors -o "$T/model.safetensors" > "$T/out" 2>&1 &&
   grep -q "step_00000004 -> " "$T/out"; then ok; else bad "export RUN: $(cat "$T/out")"; fi
if "$H" export "$T/run/step_00000002" --format safetensors -o "$T/m2.safetensors" > "$T/out" 2>&1 &&
   grep -q "step_00000002 -> " "$T/out"; then ok; else bad "export step dir: $(cat "$T/out")"; fi
ls "$T" | grep -q '\.tmp' && bad "export left a temporary behind" || ok

# inspect the export: metadata with the config and step, the tensors with shapes and bytes
if "$H" inspect "$T/model.safetensors" > "$T/out" 2>&1 &&
   grep -q '^  format: hearth$' "$T/out" && grep -q '^  step: 4$' "$T/out" &&
   grep -q '^  config: {"family":"gpt2","vocab_size":256,.*"n_layer":4,' "$T/out" &&
   grep -qE '^  wte.weight +F32 \[256, 64\] 65536 bytes$' "$T/out" &&
   grep -q '^tensors: 52$' "$T/out"; then ok; else bad "inspect export: $(head -12 "$T/out")"; fi

# inspect a checkpoint: manifest, each file OK, trainer state, tensors
C="$T/run/step_00000004"
if "$H" inspect "$C" > "$T/out" 2>&1 &&
   [ "$(grep -c '^  OK ' "$T/out")" = 3 ] && grep -q '^verify: OK$' "$T/out" &&
   grep -q '^trainer: step 4$' "$T/out" && grep -q '^  config: {"family":"gpt2"' "$T/out" &&
   grep -q '^model.safetensors tensors: 52$' "$T/out"; then ok; else bad "inspect checkpoint: $(head -12 "$T/out")"; fi

# a flipped byte in the checkpoint: inspect names the file BAD and exits non-zero; export of
# the run falls back to the checkpoint before it
printf '\x55' | dd of="$C/optimizer.safetensors" bs=1 seek=5000 conv=notrunc status=none
"$H" inspect "$C" > "$T/out" 2>&1; rc=$?
if [ $rc -ne 0 ] && grep -q '^  BAD  optimizer.safetensors' "$T/out" && grep -q '^  OK   model.safetensors' "$T/out" &&
   grep -q '^verify: BAD' "$T/out"; then ok; else bad "inspect corrupt checkpoint: rc $rc: $(cat "$T/out")"; fi
if "$H" export "$T/run" --format safetensors -o "$T/m3.safetensors" > "$T/out" 2>&1 &&
   grep -q "step_00000002 -> " "$T/out"; then ok; else bad "export past a bad checkpoint: $(cat "$T/out")"; fi
expect_fail "export a corrupt checkpoint" "crc|checksum|BAD" export "$C" --format safetensors -o "$T/m4.safetensors"
[ ! -e "$T/m4.safetensors" ] && ok || bad "export of a corrupt checkpoint wrote a file"
# a damaged safetensors file: inspect says BAD
head -c 1000 "$T/model.safetensors" > "$T/cut.safetensors"
expect_fail "inspect truncated file" "BAD" inspect "$T/cut.safetensors"

# inspect a GGUF file: its metadata and tensors, whether hearth runs it, OK (not BAD); cut
# short it is BAD
if "$H" export "$T/run" -o "$T/model.gguf" > "$T/out" 2>&1 && "$H" inspect "$T/model.gguf" > "$T/out" 2>&1 &&
   grep -q '^.*model.gguf: GGUF version 3, [0-9]* metadata keys, 53 tensors' "$T/out" &&
   grep -q '^  general.architecture: "gpt2"$' "$T/out" && grep -q '^  gpt2.block_count: 4$' "$T/out" &&
   grep -q '^  tokenizer.ggml.tokens: \[string x 256\]' "$T/out" &&
   grep -qE '^  token_embd.weight +F32 \[64, 256\] 65536 bytes$' "$T/out" &&
   grep -q '^model: {"family":"gpt2","vocab_size":256,' "$T/out" && grep -q '^verify: OK' "$T/out" &&
   ! grep -q BAD "$T/out"; then ok; else bad "inspect GGUF: $(head -20 "$T/out")"; fi
head -c 3000 "$T/model.gguf" > "$T/cut.gguf"
expect_fail "inspect truncated GGUF" "cut.gguf: BAD" inspect "$T/cut.gguf"
# a vocabulary: its size and identity
if "$H" tokenizer train --vocab-size 270 --out "$T/v.htok" "$T/corpus.txt" > /dev/null 2>&1 &&
   "$H" inspect "$T/v.htok" > "$T/out" 2>&1 && grep -q "v.htok: hearth vocabulary (HTOK)" "$T/out" &&
   grep -q "^tokens: 270$" "$T/out" && grep -q "^identity: bpe:gpt2:270:" "$T/out"; then ok
else bad "inspect HTOK: $(cat "$T/out")"; fi
# any other file is named by its kind, and is not OK
expect_fail "inspect text" "corpus.txt: a text file: not a checkpoint, model or vocabulary" inspect "$T/corpus.txt"
printf '{"a": 1}\n' > "$T/x.json"
expect_fail "inspect JSON" "x.json: a JSON file" inspect "$T/x.json"
python3 -c 'import zipfile, sys; zipfile.ZipFile(sys.argv[1], "w").writestr("archive/data.pkl", b"\x80\x02}q\x00.")' "$T/m.pt" &&
  expect_fail "inspect PyTorch" "m.pt: a PyTorch checkpoint" inspect "$T/m.pt"
printf '\x08\x07\x12\x04test' > "$T/m.onnx"
expect_fail "inspect ONNX" "m.onnx: an ONNX model" inspect "$T/m.onnx"
: > "$T/empty.bin"
expect_fail "inspect empty" "empty.bin: an empty file" inspect "$T/empty.bin"
"$H" inspect "$T/model.safetensors" > /dev/null 2>&1 && ok || bad "inspect safetensors after the kinds"
# a text file that happens to be read as a safetensors length: named as text, not as a
# header that runs past the file
expect_fail "a text file as a model" "corpus.txt is a text file, not a model" generate --model "$T/corpus.txt" "x"
expect_fail "a model as a vocabulary" "not a hearth vocabulary \(bad magic\); it is a safetensors file" tokenizer info --vocab "$T/model.safetensors"
expect_fail "a vocabulary as a model" "v.htok is a hearth vocabulary \(HTOK\), not a model; pass it as --tokenizer" export "$T/v.htok" -o "$T/y.gguf"

# bad arguments
expect_fail "export: unknown format" "unknown format 'onnx'" export "$T/run" --format onnx -o "$T/x"
expect_fail "export: no -o" "required" export "$T/run" --format safetensors
expect_fail "export: no run" "cannot open .*nope" export "$T/nope" --format safetensors -o "$T/x"
expect_fail "export: empty dir" "no checkpoint" export "$T" --format safetensors -o "$T/x"
expect_fail "export: unknown option" "unknown option '--frob'" export "$T/run" --frob
expect_fail "inspect: nothing" "expected one PATH" inspect
expect_fail "inspect: two paths" "expected one PATH \(got '.*corpus.txt'" inspect "$T/corpus.txt" "$T/corpus.txt"
expect_fail "inspect: missing" "cannot open .*nope" inspect "$T/nope"
expect_fail "inspect: a run dir" "not a checkpoint directory" inspect "$T/run"
[ ! -e "$T/x" ] && ok || bad "a failed export wrote its output"

# an independent reader (tools/st_read.py, numpy) reads the export: same tensors as the
# checkpoint's model.safetensors, the config in the metadata
PY=/usr/bin/python3
if "$PY" -c 'import numpy' 2>/dev/null; then
  if "$PY" "$(dirname "$0")/../../tools/st_read.py" "$T/model.safetensors" "$T/run/step_00000004/model.safetensors" > "$T/out" 2>&1 &&
     grep -q '^identical tensors: 52$' "$T/out" && grep -q '^meta config = {"family":"gpt2"' "$T/out"; then ok
  else bad "st_read.py: $(tail -3 "$T/out")"; fi
else
  echo "skip: st_read.py check ($PY has no numpy: apt-get install python3-numpy)"
fi

echo "tools: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
