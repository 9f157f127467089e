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

# bad arguments
expect_fail "export: unknown format" "unknown format 'onnx'" export "$T/run" --format onnx -o "$T/x"
expect_fail "export: no -o" "required" export "$T/run" --format safetensors
expect_fail "export: no run" "cannot open .*nope" export "$T/nope" --format safetensors -o "$T/x"
expect_fail "export: empty dir" "no checkpoint" export "$T" --format safetensors -o "$T/x"
expect_fail "export: unknown option" "unknown option '--frob'" export "$T/run" --frob
expect_fail "inspect: nothing" "expected one PATH" inspect
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
