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
  # no --ckpt-every, and the run still ends with a checkpoint that generate reads
  [ "$(cat "$T/ok1/latest")" = step_00000006 ] && "$H" generate --model "$T/ok1" --max-tokens 8 "to be" > "$T/gen" 2>&1 &&
    ok || bad "train without --ckpt-every: no final checkpoint to generate from: $(cat "$T/gen")"
  # the same command on the finished run: complete, nothing rewritten; other settings refused
  cp "$T/ok1/metrics.jsonl" "$T/ok1.metrics"; cp "$T/ok1/config.json" "$T/ok1.config"
  "$H" train --data "$T/corpus.txt" --out "$T/ok1" --steps 6 --seq 32 --batch 4 --sample 20 > "$T/out" 2>&1 &&
    grep -q "already complete (step 6 of 6" "$T/out" && ! grep -q "run written" "$T/out" && ok ||
    bad "train on a finished run: not 'already complete': $(cat "$T/out")"
  if "$H" train --data "$T/corpus.txt" --out "$T/ok1" --steps 6 --seq 32 --batch 4 --lr 2e-3 > "$T/out" 2>&1; then
    bad "train on a finished run with another --lr: exited 0"
  else grep -q "lr is 0.001 there, 0.002 in this run" "$T/out" && ok || bad "finished run, another --lr: $(cat "$T/out")"; fi
  "$H" train --data "$T/corpus.txt" --out "$T/ok1" --steps 5 --seq 32 --batch 4 > "$T/out" 2>&1 &&
    bad "train on a finished run with fewer --steps: exited 0"
  grep -q "steps is 6 there, 5 in this run" "$T/out" && ok || bad "finished run, fewer --steps: $(cat "$T/out")"
  cmp -s "$T/ok1/metrics.jsonl" "$T/ok1.metrics" && cmp -s "$T/ok1/config.json" "$T/ok1.config" && ok ||
    bad "a rerun on a finished run rewrote metrics.jsonl or config.json"
else
  bad "train happy path failed: $(tail -3 "$T/out1")"
fi
# data that is not text (here an executable): a warning, and the run goes on
"$H" train --data "$H" --out "$T/binrun" --steps 1 --seq 32 --batch 2 --sample 0 > "$T/out" 2> "$T/err" &&
  grep -q "warning: .* does not look like text" "$T/err" && ok || bad "train on a binary file: no warning: $(cat "$T/err")"
# checkpoints: the last one damaged, the run resumes from the one before, same losses as ok1
if "$H" train --data "$T/corpus.txt" --out "$T/ck" --steps 6 --seq 32 --batch 4 --sample 20 --ckpt-every 3 > "$T/out3" 2>&1 &&
   [ -f "$T/ck/step_00000003/manifest.json" ] && [ "$(cat "$T/ck/latest")" = step_00000006 ]; then
  truncate -s -1 "$T/ck/step_00000006/model.safetensors"
  if "$H" train --data "$T/corpus.txt" --out "$T/ck" --steps 6 --seq 32 --batch 4 --sample 20 --ckpt-every 3 --resume "$T/ck" > "$T/out4" 2>&1 &&
     grep -q "skipping checkpoint .*step_00000006.*truncated" "$T/out4" && grep -q "resuming from .*step_00000003 (step 3)" "$T/out4"; then
    a=$(grep -o '"loss":[0-9.]*' "$T/ok1/metrics.jsonl"); b=$(grep -o '"loss":[0-9.]*' "$T/ck/metrics.jsonl")
    [ "$a" = "$b" ] && ok || bad "resume: losses differ from the uninterrupted run"
  else
    bad "resume failed: $(tail -3 "$T/out4")"
  fi
else
  bad "train --ckpt-every failed: $(tail -3 "$T/out3")"
fi
expect_fail "resume with another seed" "different run setting: seed is 1337 there, 5 in this run" train --data "$T/corpus.txt" --out "$T/ck" --steps 6 --seq 32 --batch 4 --seed 5
expect_fail "resume another config" "different model config: n_layer is 4 there, 3 in this run" train --data "$T/corpus.txt" --out "$T/ck" --steps 6 --seq 32 --batch 4 --n-layer 3
mkdir -p "$T/nock"
expect_fail "resume nothing" "no checkpoint in .*nothing to resume" train --data "$T/corpus.txt" --out "$T/run" --resume "$T/nock"
expect_fail "resume a finished run elsewhere" "at the last step of its run.*nothing to train" train --data "$T/corpus.txt" --out "$T/run" --steps 6 --seq 32 --batch 4 --resume "$T/ok1"
# SIGTERM: the step finishes, a final checkpoint is written, exit 143; the same command
# resumes from it (ckpt_load verifies it first)
# wait_step DIR: until DIR/metrics.jsonl has a step's loss (at most 60 s)
wait_step() { for _ in $(seq 600); do grep -qs '"loss":' "$1/metrics.jsonl" && return; sleep 0.1; done; }
SG=(train --data "$T/corpus.txt" --out "$T/sg" --steps 100000 --seq 32 --batch 4 --sample 0 --ckpt-every 1000)
"$H" "${SG[@]}" > "$T/out5" 2> "$T/err5" & pid=$!
wait_step "$T/sg"; kill -TERM $pid; wait $pid; st=$?
lat=$(cat "$T/sg/latest" 2> /dev/null)
if [ $st -eq 143 ] && grep -q "stopped by SIGTERM" "$T/err5" && [ -n "$lat" ] && [ -f "$T/sg/$lat/manifest.json" ]; then
  "$H" "${SG[@]}" > "$T/out6" 2> "$T/err6" & pid=$!
  for _ in $(seq 600); do grep -qs "resuming" "$T/err6" && break; sleep 0.1; done
  kill -TERM $pid; wait $pid
  grep -q "resuming from .*$lat (step $((10#${lat#step_})))" "$T/err6" && ok || bad "SIGTERM: no resume from $lat: $(cat "$T/err6")"
else
  bad "SIGTERM: status $st, latest '$lat': $(cat "$T/err5")"
fi
# two trainers on one run directory: the second is refused, naming the first one's pid
"$H" "${SG[@]}" > "$T/out7" 2> "$T/err7" & pid=$!
for _ in $(seq 600); do grep -qs "resuming" "$T/err7" && break; sleep 0.1; done
if "$H" "${SG[@]}" > "$T/out8" 2> "$T/err8"; then bad "lock: a second trainer on the run exited 0"
else grep -q "in use: another hearth train (pid $pid)" "$T/err8" && ok || bad "lock: $(cat "$T/err8")"; fi
kill -TERM $pid; wait $pid
# SIGKILL at random points, then the same command again: the same losses and, byte for byte,
# the same final weights as an uninterrupted run (tools/ckpt_soak.sh does this 50 times)
KL=(train --data "$T/corpus.txt" --seq 32 --batch 4 --steps 12 --sample 0 --ckpt-every 2 --eval-every 5)
if "$H" "${KL[@]}" --out "$T/kref" > /dev/null 2>&1; then
  for k in 1 2 3; do
    rm -rf "$T/kill"
    "$H" "${KL[@]}" --out "$T/kill" > /dev/null 2>&1 & pid=$!
    sleep "$((k - 1)).$((RANDOM % 10))"; kill -KILL $pid 2> /dev/null; wait $pid 2> /dev/null
    if "$H" "${KL[@]}" --out "$T/kill" > /dev/null 2>&1 &&
       [ "$(grep -o '"loss":[0-9.]*' "$T/kref/metrics.jsonl")" = "$(grep -o '"loss":[0-9.]*' "$T/kill/metrics.jsonl")" ] &&
       cmp -s "$T/kref/step_00000012/model.safetensors" "$T/kill/step_00000012/model.safetensors"; then ok
    else bad "SIGKILL $k: the resumed run differs from the uninterrupted one"; fi
  done
else
  bad "SIGKILL: the reference run failed"
fi
# A full disk (ENOSPC) during checkpoints: a 4 MiB tmpfs holds the tiny preset's first checkpoint
# (2.7 MB) and not a second; training goes on, each failure is reported, the first stays valid.
# (tmpfs also refuses O_DIRECT: the plain-write fallback is what runs.) Mounting needs root in a
# container that allows it; elsewhere the check is skipped with a note.
# The final checkpoint (step 6) cannot be written either: the run fails, exit 1, saying so once.
mkdir -p "$T/full"
if mount -t tmpfs -o size=4m tmpfs "$T/full" 2> /dev/null; then
  "$H" train --data "$T/corpus.txt" --out "$T/full/run" --steps 6 --seq 32 --batch 4 --sample 0 \
       --ckpt-every 2 > "$T/outf" 2>&1; st=$?
  if [ $st -eq 1 ] && grep -q "checkpoint step_00000004 failed.*No space left on device" "$T/outf" &&
     [ "$(grep -c "final checkpoint step_00000006 could not be written.*No space left on device" "$T/outf")" = 1 ] &&
     [ "$(grep -c "step_00000006" "$T/outf")" = 1 ] && ! grep -q "run written" "$T/outf" &&
     "$H" inspect "$T/full/run/step_00000002" > /dev/null 2>&1 && [ ! -e "$T/full/run/step_00000004" ] &&
     [ ! -e "$T/full/run/step_00000006" ] &&
     [ "$(grep -c '"loss":' "$T/full/run/metrics.jsonl")" = 6 ] && ! ls -d "$T"/full/run/.tmp* 2> /dev/null; then ok
  else bad "ENOSPC: exit $st: $(tail -3 "$T/outf")"; fi
  umount "$T/full"
else
  echo "note: the ENOSPC check is skipped (no permission to mount a small tmpfs)"
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
# ---- hearth tokenizer: bad input first (each fails with a message, leaves no --out file)
# expect_fail_in INPUT NAME PATTERN ARGS...: like expect_fail, with INPUT on stdin
expect_fail_in() {
  local input=$1; shift
  local name=$1 pat=$2; shift 2
  rm -rf "$T/run"
  if printf '%s' "$input" | "$H" "$@" > "$T/out" 2> "$T/err"; then bad "$name: exited 0"; return; fi
  grep -qiE -- "$pat" "$T/err" || { bad "$name: stderr lacks /$pat/: $(cat "$T/err")"; return; }
  [ ! -e "$T/run" ] || { bad "$name: left $T/run behind"; return; }
  ok
}
TC="$T/corpus.txt"
expect_fail "tokenizer: no command" "usage" tokenizer
expect_fail "tokenizer: unknown command" "unknown command 'frob'" tokenizer frob
expect_fail "tokenizer: no --vocab" "--vocab FILE is required" tokenizer encode
expect_fail "tokenizer: missing vocab" "cannot open.*nope.htok" tokenizer encode --vocab "$T/nope.htok"
printf 'this is not a vocabulary' > "$T/garbage.htok"
expect_fail "tokenizer: bad magic" "bad magic" tokenizer encode --vocab "$T/garbage.htok"
: > "$T/empty.htok"
expect_fail "tokenizer: empty vocab file" "empty" tokenizer decode --vocab "$T/empty.htok"
printf 'GGUF\003\000\000\000\000\000\000\000\000\000\000\000\377\377\377\377\377\377\377\377' > "$T/bad.gguf"
expect_fail "tokenizer: corrupt GGUF" "GGUF" tokenizer encode --vocab "$T/bad.gguf"
expect_fail "tokenizer: vocab size too small" "--vocab-size must be an integer in \[256" tokenizer train --vocab-size 100 --out "$T/run" "$TC"
expect_fail "tokenizer: train without files" "required" tokenizer train --vocab-size 300 --out "$T/run"
expect_fail "tokenizer: train missing file" "cannot open.*nope.txt" tokenizer train --vocab-size 300 --out "$T/run" "$T/nope.txt"
expect_fail "tokenizer: bad pattern" "--pattern must be gpt2 or cl100k" tokenizer train --vocab-size 300 --pattern o200k --out "$T/run" "$TC"
expect_fail "tokenizer: unknown option" "unknown option '--frob'" tokenizer train --frob 1 --vocab-size 300 --out "$T/run" "$TC"
expect_fail "tokenizer: special too many" "at least 256 \+ 2 special" tokenizer train --vocab-size 257 --special '<a>' --special '<b>' --out "$T/run" "$TC"
printf 'QQ== 0\nnot base64!\n' > "$T/bad.tiktoken"
expect_fail "tokenizer: bad tiktoken line" "bad.tiktoken:2: not a tiktoken line" tokenizer import --tiktoken "$T/bad.tiktoken" --out "$T/run"
# the happy path: train (twice: the same file), encode, decode, specials, empty input
if "$H" tokenizer train --vocab-size 270 --out "$T/v1.htok" "$TC" > "$T/out" 2>&1 &&
   "$H" tokenizer train --vocab-size 270 --out "$T/v2.htok" "$TC" > /dev/null 2>&1; then
  cmp -s "$T/v1.htok" "$T/v2.htok" && ok || bad "tokenizer train: two runs gave different files"
  V="$T/v1.htok"
  "$H" tokenizer info --vocab "$V" | grep -q "tokens: 270" && ok || bad "tokenizer info: wrong size"
  { cat "$TC"; printf '\377\376 caf\351 \300\257 \355\240\200 <|endoftext|> end'; } > "$T/bytes.txt"
  "$H" tokenizer encode --vocab "$V" < "$T/bytes.txt" > "$T/ids.txt" &&
    "$H" tokenizer decode --vocab "$V" < "$T/ids.txt" > "$T/back.txt" &&
    cmp -s "$T/bytes.txt" "$T/back.txt" && ok || bad "tokenizer: decode(encode(x)) != x"
  [ "$(wc -w < "$T/ids.txt")" -lt "$(wc -c < "$T/bytes.txt")" ] && ok || bad "tokenizer: no compression"
  [ "$(printf 'a<|endoftext|>b' | "$H" tokenizer encode --vocab "$V" --special)" = "97 269 98" ] && ok ||
    bad "tokenizer: --special did not give the end-of-text id"
  printf 'a<|endoftext|>b' | "$H" tokenizer encode --vocab "$V" | grep -qw 269 && bad "tokenizer: special without --special" || ok
  [ "$(printf '' | "$H" tokenizer encode --vocab "$V")" = "" ] && ok || bad "tokenizer: empty input"
  [ "$(printf '97 269 98' | "$H" tokenizer decode --vocab "$V" --skip-special)" = "ab" ] && ok || bad "tokenizer: --skip-special"
  expect_fail_in "97 abc" "tokenizer: non-numeric id" "'abc' is not a token id" tokenizer decode --vocab "$V"
  expect_fail_in "97 270" "tokenizer: id out of range" "270.*not in the vocabulary" tokenizer decode --vocab "$V"
  head -c 200 "$V" > "$T/trunc.htok"
  expect_fail "tokenizer: truncated vocab" "truncated" tokenizer encode --vocab "$T/trunc.htok"
  : > "$T/empty.txt"
  "$H" tokenizer train --vocab-size 300 --out "$T/e.htok" "$T/empty.txt" > /dev/null 2> "$T/err" &&
    grep -q "ran out of pairs" "$T/err" && ok || bad "tokenizer: training on an empty file"
else
  bad "tokenizer train happy path failed: $(tail -3 "$T/out")"
fi
# ---- hearth prepare, and train on its shards
V="$T/v1.htok"
P="$T/run" # expect_fail checks that a failed prepare leaves no output directory
mkdir -p "$T/docs/sub"
for i in $(seq 40); do echo "document $i: the lighthouse keeper wrote in her log, line $((i % 7))." > "$T/docs/d$i.txt"; done
cp "$T/docs/d1.txt" "$T/docs/sub/copy.txt"                 # a duplicate
: > "$T/docs/sub/empty.txt"
printf '\377\376 invalid UTF-8 stays bytes\n' > "$T/docs/sub/bytes.txt"
{ for i in $(seq 60); do echo "{\"text\": \"record $i of the jsonl file\", \"n\": $i}"; done
  echo '{"text": "unterminated'; echo '{"body": "no text"}'; } > "$T/docs.jsonl"
expect_fail "prepare: no inputs" "at least one input" prepare --vocab "$V" --out "$P"
expect_fail "prepare: no --vocab" "--vocab FILE" prepare --out "$P" "$T/docs"
expect_fail "prepare: missing input" "cannot open.*nope.txt" prepare --vocab "$V" --out "$P" "$T/nope.txt"
expect_fail "prepare: garbage vocab" "bad magic" prepare --vocab "$T/garbage.htok" --out "$P" "$T/docs"
expect_fail "prepare: bad val-frac" "--val-frac must be a number" prepare --vocab "$V" --out "$P" --val-frac 1.5 "$T/docs"
expect_fail "prepare: unknown option" "unknown option '--frob'" prepare --frob 1 --vocab "$V" --out "$P" "$T/docs"
mkdir -p "$T/nodocs"; : > "$T/nodocs/a.txt"
expect_fail "prepare: only empty files" "no documents" prepare --vocab "$V" --out "$P" "$T/nodocs"
"$H" tokenizer train --vocab-size 270 --no-special --out "$T/noeot.htok" "$TC" > /dev/null 2>&1
expect_fail "prepare: vocab without EOT" "no end-of-text token" prepare --vocab "$T/noeot.htok" --out "$P" "$T/docs"
expect_fail "train: dir without prepare.json" "no prepare.json" train --data "$T/docs" --out "$T/run"
if "$H" prepare --vocab "$V" --out "$T/prep" --val-frac 0.2 --seed 3 "$T/docs" "$T/docs.jsonl" > "$T/out" 2> "$T/err"; then
  grep -q "prepared $T/prep: 101 documents" "$T/out" && ok || bad "prepare: summary: $(cat "$T/out")"
  grep -q "1 duplicates, 1 empty, 2 malformed" "$T/out" && ok || bad "prepare: counts: $(cat "$T/out")"
  grep -q "docs.jsonl:61: malformed JSON" "$T/err" && grep -q 'docs.jsonl:62: no "text" field' "$T/err" && ok ||
    bad "prepare: malformed-line warnings: $(cat "$T/err")"
  for f in train_000000.bin val_000000.bin vocab.htok prepare.json; do [ -s "$T/prep/$f" ] || bad "prepare: $f missing"; done
  [ "$(head -c 4 "$T/prep/train_000000.bin")" = "HSHD" ] && ok || bad "prepare: shard magic"
  expect_fail "prepare: again into the same dir" "already holds" prepare --vocab "$V" --out "$T/prep" "$T/docs"
  [ -s "$T/prep/prepare.json" ] && ok || bad "prepare: a refused run removed the earlier output"
  if "$H" train --data "$T/prep" --out "$T/sr" --steps 4 --seq 16 --batch 2 --sample 12 > "$T/out" 2>&1; then
    grep -q '"vocab_size":270' "$T/sr/config.json" && ok || bad "train on shards: vocab_size not the data's"
    grep -q -- "--- sample ---" "$T/out" && grep -q "val loss" "$T/out" && ok || bad "train on shards: no sample or eval"
  else
    bad "train on shards failed: $(tail -3 "$T/out")"
  fi
  expect_fail "train: model vocab too small" "smaller than the data's" train --data "$T/prep" --out "$T/run" --vocab-size 256 --seq 16
  cp -r "$T/prep" "$T/broken"
  head -c 300 "$T/prep/train_000000.bin" > "$T/broken/train_000000.bin"
  expect_fail "train: truncated shard" "truncated or corrupt" train --data "$T/broken" --out "$T/run" --seq 16
  printf 'XXXX' | dd of="$T/broken/train_000000.bin" conv=notrunc 2> /dev/null
  expect_fail "train: bad shard magic" "bad magic" train --data "$T/broken" --out "$T/run" --seq 16
else
  bad "prepare happy path failed: $(cat "$T/err")"
fi
# one text file is one document: split by position, both splits get shards, train accepts it
for i in $(seq 2000); do echo "line $i of one long book about the lighthouse keeper and her log"; done > "$T/book.txt"
if "$H" prepare --vocab "$V" --out "$T/book" --val-frac 0.1 "$T/book.txt" > "$T/out" 2> "$T/err"; then
  grep -q "split by position" "$T/out" && [ -s "$T/book/train_000000.bin" ] && [ -s "$T/book/val_000000.bin" ] && ok ||
    bad "prepare of one text file: not split by position: $(cat "$T/out")"
  "$H" train --data "$T/book" --out "$T/bookrun" --steps 2 --seq 32 --batch 2 --sample 0 > "$T/out" 2>&1 &&
    grep -q "val loss" "$T/out" && ok || bad "train on one prepared text file: $(tail -3 "$T/out")"
else
  bad "prepare of one text file failed: $(cat "$T/err")"
fi

# OpenMP's wait policy (src/cli/main.c): hearth re-execs itself with GOMP_SPINCOUNT=30000 when
# the 1-minute load average is below half the cores, with OMP_WAIT_POLICY=passive otherwise; a
# policy the user set is kept as it is. Read from a running server's environment.
wait_env() { # ENV... : the OMP/GOMP variables of a hearth serve started with ENV
  env "$@" "$H" serve --vstore-dir "$T/vs_env" --port 0 > "$T/serve_env.log" 2>&1 &
  local pid=$! i
  for i in $(seq 100); do grep -q "listening on" "$T/serve_env.log" && break; sleep 0.1; done
  tr '\0' '\n' < "/proc/$pid/environ" | grep -E '^(OMP_WAIT_POLICY|GOMP_SPINCOUNT)=' | sort | tr '\n' ' '
  kill "$pid"; wait "$pid" 2> /dev/null
}
load=$(cut -d' ' -f1 /proc/loadavg)
got=$(wait_env)
load2=$(cut -d' ' -f1 /proc/loadavg)
side() { awk -v l="$1" -v n="$(nproc)" 'BEGIN { print (l < n / 2) ? "GOMP_SPINCOUNT=30000 " : "OMP_WAIT_POLICY=passive " }'; }
# the load read before and after: on the same side of the line, that side's policy; across it,
# either
if [ "$(side "$load")" = "$(side "$load2")" ]; then
  [ "$got" = "$(side "$load")" ] && ok || bad "wait policy at load $load: '$got', expected '$(side "$load")'"
else
  [ "$got" = "$(side "$load")" ] || [ "$got" = "$(side "$load2")" ] && ok || bad "wait policy: '$got'"
fi
got=$(wait_env OMP_WAIT_POLICY=active)
[ "$got" = "OMP_WAIT_POLICY=active " ] && ok || bad "a user's OMP_WAIT_POLICY replaced: '$got'"
got=$(wait_env GOMP_SPINCOUNT=5)
[ "$got" = "GOMP_SPINCOUNT=5 " ] && ok || bad "a user's GOMP_SPINCOUNT replaced: '$got'"
echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
