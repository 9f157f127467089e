#!/usr/bin/env bash
# tests/dist/test_dist.sh: data-parallel `hearth train` under mpirun (Open MPI) on one machine:
#  - N ranks with --accum A equal one process with --accum N*A, bit for bit (weights, AdamW
#    state, losses), with several buckets, overlap on and off; the same N twice: identical;
#  - ZeRO-1 equals plain data parallel, bit for bit (and one process, Llama family too);
#  - a checkpoint made with 2 ranks resumes in 1 process, and one made by 1 process on 4
#    ranks under ZeRO-1 (the data position is global): the final state equals an
#    uninterrupted run's;
#  - a rank killed with kill -9 mid-run: every rank stops within a bounded time with a clear
#    message, and the rerun resumes from the newest good checkpoint to the uninterrupted bits;
#  - a rank that hangs (SIGSTOP): the others stop after --comm-timeout, naming the collective;
#  - `hearth finetune` (LoRA, ZeRO-1, --full) on N ranks equals one process with N x accum.
# Usage: test_dist.sh PATH/TO/hearth. Tiny models; ~20 s on 2 cores.
set -u
H=$(realpath "${1:?usage: test_dist.sh path/to/hearth}")
command -v mpirun > /dev/null || { echo "FAIL: mpirun not found (make deps installs openmpi-bin)"; exit 1; }
T=$(mktemp -d)
JOB=
cleanup() {
  [ -n "$JOB" ] && kill -9 "$JOB" 2> /dev/null
  [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
export OMP_NUM_THREADS=1 ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
# as root in CI; more ranks than cores; shared memory on one machine
MPI=(mpirun --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS -x ASAN_OPTIONS)

# ~120 KB of generated text, the same every time
awk 'BEGIN { s = 7; split("the a of and to in is was that it for on with as by at from this be or an are not have had his her they we you one all", w, " ");
  for (i = 0; i < 24000; i++) { s = (s * 1103515245 + 12345) % 2147483648; printf "%s%s", w[int(s / 65536) % 34 + 1], (i % 13 == 12) ? ".\n" : " " } }' > "$T/corpus.txt"

# a tiny GPT-2 with 3 layers; --bucket-mb 0: one bucket a stage (5 buckets)
COMMON=(--data "$T/corpus.txt" --steps 8 --batch 2 --seq 32 --threads 1 --sample 0 --n-layer 3
  --d-model 64 --n-head 4 --bucket-mb 0 --eval-batches 3 --ckpt-every 4)

same_state() { # same_state RUN_A RUN_B STEP: weights and AdamW state byte for byte
  local s
  s=$(printf 'step_%08d' "$3")
  cmp -s "$1/$s/model.safetensors" "$2/$s/model.safetensors" &&
    cmp -s "$1/$s/optimizer.safetensors" "$2/$s/optimizer.safetensors"
}
losses() { grep -o '"loss":[^,]*\|"val_loss":[^,}]*' "$1/metrics.jsonl"; }

# one process, --accum 4: the reference
"$H" train "${COMMON[@]}" --out "$T/ref" --accum 4 > "$T/log" 2>&1 || bad "reference run: $(tail -3 "$T/log")"
"$H" train "${COMMON[@]}" --out "$T/ref2" --accum 2 > "$T/log" 2>&1 || bad "reference run 2: $(tail -3 "$T/log")"

# item 3: 2 ranks x --accum 2, 4 ranks x --accum 1, overlap off: all equal the reference
dp() { # dp NAME NP ARGS...
  local name=$1 np=$2; shift 2
  "${MPI[@]}" -np "$np" "$H" train "${COMMON[@]}" --out "$T/$name" "$@" > "$T/$name.log" 2>&1 ||
    { bad "$name: exit $?: $(tail -5 "$T/$name.log")"; return 1; }
}
if dp dp2 2 --accum 2; then
  same_state "$T/ref" "$T/dp2" 8 && same_state "$T/ref" "$T/dp2" 4 && ok ||
    bad "2 ranks x accum 2 differ from one process x accum 4"
  [ "$(losses "$T/ref")" = "$(losses "$T/dp2")" ] && ok || bad "2 ranks: losses differ from one process"
  grep -q '"ranks":2,"comm_ms":[0-9.e-]*,"stall_ms":[0-9.e-]*,"comm_bytes":[1-9]' "$T/dp2/metrics.jsonl" &&
    ok || bad "metrics.jsonl lacks comm_ms/stall_ms/comm_bytes: $(head -1 "$T/dp2/metrics.jsonl")"
  grep -q "comm per step  p50 .* p99 .* max" "$T/dp2.log" && grep -q "stall per step p50" "$T/dp2.log" &&
    grep -q "sent per step" "$T/dp2.log" && grep -q "5 buckets" "$T/dp2.log" && ok ||
    bad "no end-of-run communication summary: $(tail -8 "$T/dp2.log")"
fi
dp dp2b 2 --accum 2 && { same_state "$T/dp2" "$T/dp2b" 8 && ok || bad "2 ranks twice: different bits"; }
dp dp4 4 --accum 1 && { same_state "$T/ref" "$T/dp4" 8 && ok || bad "4 ranks x accum 1 differ from one process x accum 4"; }
dp nooverlap 2 --accum 2 --overlap 0 && { same_state "$T/ref" "$T/nooverlap" 8 && ok || bad "--overlap 0 changed the bits"; }

# item 2: ZeRO-1 equals plain data parallel; its AdamW state is half per rank
if dp zero2 2 --accum 2 --zero 1; then
  same_state "$T/dp2" "$T/zero2" 8 && same_state "$T/dp2" "$T/zero2" 4 && ok || bad "ZeRO-1 differs from plain data parallel"
  grep -q "ZeRO-1" "$T/zero2.log" && grep -q "AdamW state .* (this rank's shard)" "$T/zero2.log" && ok ||
    bad "ZeRO-1 summary missing: $(tail -6 "$T/zero2.log")"
fi
dp zero4 4 --accum 1 --zero 1 && { same_state "$T/ref" "$T/zero4" 8 && ok || bad "4 ranks ZeRO-1 differ from one process"; }

# the Llama family (untied head, no biases, RoPE): 2 ZeRO-1 ranks equal one process
LL=(--data "$T/corpus.txt" --steps 4 --batch 2 --seq 32 --threads 1 --sample 0 --preset llama-tiny
  --n-layer 2 --bucket-mb 0 --eval-batches 2)
"$H" train "${LL[@]}" --out "$T/lref" --accum 2 > "$T/lref.log" 2>&1 || bad "llama reference: $(tail -3 "$T/lref.log")"
if "${MPI[@]}" -np 2 "$H" train "${LL[@]}" --out "$T/ldp" --zero 1 > "$T/ldp.log" 2>&1; then
  same_state "$T/lref" "$T/ldp" 4 && ok || bad "llama: 2 ZeRO-1 ranks differ from one process x accum 2"
else
  bad "llama 2 ranks: $(tail -3 "$T/ldp.log")"
fi

# item 4: resume with another N. A checkpoint of 2 ranks (step 4) finished by one process with
# --accum 2 (the same global batch); one of one process finished by 4 ranks under ZeRO-1.
mkdir -p "$T/mix1" "$T/mix2"
cp -r "$T/dp2/step_00000004" "$T/mix1/" && cp "$T/dp2/config.json" "$T/mix1/"
"$H" train "${COMMON[@]}" --out "$T/mix1" --accum 4 > "$T/mix1.log" 2>&1 || bad "resume 2 ranks -> 1: $(tail -3 "$T/mix1.log")"
grep -q "resuming from .*step_00000004 (step 4)" "$T/mix1.log" && same_state "$T/ref" "$T/mix1" 8 && ok ||
  bad "2 ranks -> 1 process: not the uninterrupted bits ($(grep -c . "$T/mix1.log") lines)"
cp -r "$T/ref/step_00000004" "$T/mix2/" && cp "$T/ref/config.json" "$T/mix2/"
dp mix2 4 --accum 1 --zero 1 && { grep -q "resuming from .*(step 4)" "$T/mix2.log" && same_state "$T/ref" "$T/mix2" 8 && ok ||
  bad "1 process -> 4 ranks ZeRO-1: not the uninterrupted bits"; }
# another global batch is refused, by name
"${MPI[@]}" -np 2 "$H" train "${COMMON[@]}" --out "$T/other" --accum 1 --resume "$T/ref" > "$T/other.log" 2>&1 &&
  bad "another global batch: exited 0"
grep -q "accum is 4 there, 2 in this run" "$T/other.log" 2> /dev/null && ok || bad "another global batch not refused: $(tail -3 "$T/other.log" 2> /dev/null)"

# item 5: kill -9 of one rank mid-run. 300 steps, a checkpoint every 10; reference: one
# process with --accum 2.
LONG=(--data "$T/corpus.txt" --steps 300 --batch 2 --seq 32 --threads 1 --sample 0 --n-layer 2
  --d-model 32 --n-head 2 --eval-batches 2 --ckpt-every 10 --comm-timeout 20)
"$H" train "${LONG[@]}" --out "$T/kref" --accum 2 > "$T/kref.log" 2>&1 || bad "kill reference: $(tail -3 "$T/kref.log")"
rank_pid() { # rank_pid MPIRUN_PID RANK: the hearth process of that rank
  local p
  for p in $(pgrep -P "$1"); do
    tr '\0' '\n' < "/proc/$p/environ" 2> /dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$p"; return; }
  done
}
kill_test() { # kill_test NAME SIGNAL RANK EXTRA...: start, signal the rank at step_30, wait
  local name=$1 sig=$2 rank=$3; shift 3
  "${MPI[@]}" -np 2 "$H" train "${LONG[@]}" --out "$T/$name" --accum 1 "$@" > "$T/$name.log" 2>&1 &
  JOB=$!
  for _ in $(seq 400); do [ -e "$T/$name/step_00000030/manifest.json" ] && break; sleep 0.05; done
  local p
  p=$(rank_pid "$JOB" "$rank")
  [ -n "$p" ] || { bad "$name: rank $rank not found (finished already?)"; wait "$JOB"; JOB=; return 1; }
  local t0=$SECONDS
  kill "-$sig" "$p"
  for _ in $(seq 600); do kill -0 "$JOB" 2> /dev/null || break; sleep 0.05; done
  if kill -0 "$JOB" 2> /dev/null; then
    bad "$name: the job still runs 30 s after rank $rank got SIG$sig"
    kill -9 "$JOB"
  fi
  wait "$JOB"
  local rc=$?
  JOB=
  [ "$rc" -ne 0 ] && ok || bad "$name: the job exited 0"
  echo "$((SECONDS - t0))" > "$T/$name.secs"
  [ -z "$(pgrep -f "$T/$name" 2> /dev/null)" ] && ok || { bad "$name: processes left: $(pgrep -af "$T/$name")"; pkill -9 -f "$T/$name"; }
}
if kill_test killed KILL 1; then
  grep -qiE "rank 1.*(exited|killed|signal 9)|signal 9|Killed" "$T/killed.log" && ok ||
    bad "kill -9: no message naming the dead rank: $(tail -5 "$T/killed.log")"
  [ ! -e "$T/killed/step_00000300" ] && ok || bad "kill -9 came too late (the run finished)"
  # the rerun resumes from the newest good checkpoint and ends with the uninterrupted bits
  "${MPI[@]}" -np 2 "$H" train "${LONG[@]}" --out "$T/killed" --accum 1 > "$T/killed2.log" 2>&1 ||
    bad "rerun after kill -9: $(tail -3 "$T/killed2.log")"
  grep -q "resuming from" "$T/killed2.log" && same_state "$T/kref" "$T/killed" 300 && ok ||
    bad "rerun after kill -9: not the uninterrupted bits"
fi
# a rank that hangs: the other stops after --comm-timeout 2 with a message naming it
if kill_test hung STOP 1 --comm-timeout 2; then
  grep -q "has not completed after 2 s: another rank has died or hangs" "$T/hung.log" && ok ||
    bad "hang: no watchdog message: $(tail -5 "$T/hung.log")"
  [ "$(cat "$T/hung.secs")" -le 20 ] && ok || bad "hang: stopping took $(cat "$T/hung.secs") s"
fi

# `hearth finetune` runs through the same loop: 2 ranks x --accum 1 equal one process with
# --accum 2, bit for bit (the adapters, their AdamW state and checkpoints, the losses; LoRA
# dropout keyed by the global micro-batch), plain and ZeRO-1; and --full likewise
BASE=$(dirname "$0")/../fixtures/gguf/stories260K-F16.gguf
for i in $(seq 0 99); do
  echo "{\"messages\": [{\"role\": \"user\", \"content\": \"Say line $((i % 7)).\"}, {\"role\": \"assistant\", \"content\": \"Thou art my sun number $((i % 7)).\"}]}"
done > "$T/chat.jsonl"
FT=(--base "$BASE" --data "$T/chat.jsonl" --steps 6 --batch 2 --seq 64 --threads 1 --lr 3e-3
  --ckpt-every 3 --eval-every 3 --eval-batches 3 --lora-dropout 0.1 --lora-targets q,v,down)
"$H" finetune "${FT[@]}" --out "$T/fref" --accum 2 > "$T/fref.log" 2>&1 || bad "finetune reference: $(tail -3 "$T/fref.log")"
ft_dp() { # ft_dp NAME ARGS...: 2 ranks
  local name=$1; shift
  "${MPI[@]}" -np 2 "$H" finetune "${FT[@]}" --out "$T/$name" "$@" > "$T/$name.log" 2>&1 ||
    { bad "$name: exit $?: $(tail -5 "$T/$name.log")"; return 1; }
}
if ft_dp fdp2 --accum 1; then
  cmp -s "$T/fref/adapter.gguf" "$T/fdp2/adapter.gguf" && same_state "$T/fref" "$T/fdp2" 6 &&
    same_state "$T/fref" "$T/fdp2" 3 && ok || bad "finetune: 2 ranks differ from one process x accum 2"
  [ "$(losses "$T/fref")" = "$(losses "$T/fdp2")" ] && ok || bad "finetune 2 ranks: losses differ"
  grep -q "comm per step  p50" "$T/fdp2.log" && ok || bad "finetune: no communication summary"
fi
ft_dp fzero2 --accum 1 --zero 1 && { same_state "$T/fref" "$T/fzero2" 6 && ok || bad "finetune ZeRO-1 differs"; }
FULL=(--base "$BASE" --data "$T/chat.jsonl" --steps 3 --batch 2 --seq 64 --threads 1 --full --eval-batches 2)
"$H" finetune "${FULL[@]}" --out "$T/fullref" --accum 2 > "$T/fullref.log" 2>&1 || bad "full reference: $(tail -3 "$T/fullref.log")"
"${MPI[@]}" -np 2 "$H" finetune "${FULL[@]}" --out "$T/fulldp" > "$T/fulldp.log" 2>&1 &&
  cmp -s "$T/fullref/model.gguf" "$T/fulldp/model.gguf" && same_state "$T/fullref" "$T/fulldp" 3 && ok ||
  bad "finetune --full: 2 ranks differ from one process x accum 2: $(tail -3 "$T/fulldp.log")"

echo "dist: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
