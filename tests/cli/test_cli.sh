#!/usr/bin/env bash
# tests/cli/test_cli.sh: the hearth command as a user runs it: the happy path of `train` and
# `digits`, and bad input — each must fail with a clear message, a non-zero exit and no
# half-written run directory. Usage: test_cli.sh PATH/TO/hearth
set -u
H=${1:?usage: test_cli.sh path/to/hearth}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

for i in $(seq 200); do echo "to be or not to be, that is the question $((i % 7))"; done > "$T/corpus.txt"

# expect_fail NAME PATTERN ARGS...: exit status non-zero, stderr matches PATTERN, no run dir
expect_fail() {
  local name=$1 pat=$2; shift 2
  rm -rf "$T/run"
  if "$H" "$@" > "$T/out" 2> "$T/err"; then bad "$name: exited 0"; return; fi
  grep -qiE -- "$pat" "$T/err" || { bad "$name: stderr lacks /$pat/: $(cat "$T/err")"; return; }
  [ ! -e "$T/run" ] || { bad "$name: left $T/run behind"; return; }
  ok
}

expect_fail "no command" "usage"
expect_fail "unknown command" "unknown command" frobnicate
expect_fail "missing data" "cannot open.*nope.txt" train --data "$T/nope.txt" --out "$T/run"
expect_fail "data is a directory" "not a regular file" train --data "$T" --out "$T/run"
expect_fail "zero steps" "steps must be an integer" train --data "$T/corpus.txt" --out "$T/run" --steps 0
expect_fail "heads do not divide" "n_head \(5\) does not divide d_model \(64\)" train --data "$T/corpus.txt" --out "$T/run" --n-head 5
expect_fail "kv heads do not divide" "n_kv_head" train --data "$T/corpus.txt" --out "$T/run" --preset llama-tiny --n-kv-head 3
expect_fail "sequence too long" "longer than the model's maximum" train --data "$T/corpus.txt" --out "$T/run" --seq 129
expect_fail "unknown preset" "unknown preset 'gpt5'" train --data "$T/corpus.txt" --out "$T/run" --preset gpt5
expect_fail "unknown option" "unknown option '--frob'" train --data "$T/corpus.txt" --out "$T/run" --frob 1
expect_fail "bad number" "--lr must be a number" train --data "$T/corpus.txt" --out "$T/run" --lr fast
expect_fail "missing value" "--steps needs a value" train --data "$T/corpus.txt" --out "$T/run" --steps
expect_fail "no --out" "--out DIR are required" train --data "$T/corpus.txt"
expect_fail "digits: missing file" "cannot open" digits --data "$T/nope.csv.gz"
printf '0,1,2\n' | gzip > "$T/bad.csv.gz"
expect_fail "digits: malformed row" "bad.csv.gz:1: field 3" digits --data "$T/bad.csv.gz"

# the happy path: a short run writes its files and a sample; same seed -> same losses
if "$H" train --data "$T/corpus.txt" --out "$T/ok1" --steps 6 --seq 32 --batch 4 --sample 20 > "$T/out1" 2>&1 &&
   "$H" train --data "$T/corpus.txt" --out "$T/ok2" --steps 6 --seq 32 --batch 4 --sample 20 > "$T/out2" 2>&1; then
  for f in metrics.jsonl loss.svg config.json; do [ -s "$T/ok1/$f" ] || bad "train: $f missing"; done
  grep -q -- "--- sample ---" "$T/out1" || bad "train: no sample printed"
  grep -q "of sgemm peak" "$T/out1" || bad "train: no progress line"
  a=$(grep -o '"loss":[0-9.]*' "$T/ok1/metrics.jsonl"); b=$(grep -o '"loss":[0-9.]*' "$T/ok2/metrics.jsonl")
  [ -n "$a" ] && [ "$a" = "$b" ] || bad "train: same seed gave different losses"
  ok
else
  bad "train happy path failed: $(tail -3 "$T/out1")"
fi
if [ -f /usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz ]; then
  out=$("$H" digits 2>&1)
  acc=$(echo "$out" | sed -n 's/^test accuracy: \([0-9.]*\)%.*/\1/p')
  params=$(echo "$out" | sed -n 's/.* \([0-9]*\) parameters$/\1/p')
  if [ -n "$acc" ] && awk "BEGIN{exit !($acc >= 95)}" && [ "$params" -ge 100 ] && [ "$params" -le 999 ]; then ok
  else bad "digits: accuracy '$acc' (need >= 95) or parameters '$params' (need a few hundred)"; fi
else
  bad "digits: python3-sklearn's digits.csv.gz is not installed (make deps)"
fi
echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
