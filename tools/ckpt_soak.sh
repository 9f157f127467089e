#!/usr/bin/env bash
# tools/ckpt_soak.sh: kills `hearth train` with SIGKILL at random points N times (default 50),
# resumes each by rerunning the same command, and counts the runs whose losses and final
# model.safetensors are, byte for byte, those of an uninterrupted run with the same seed.
# Usage: tools/ckpt_soak.sh [PATH/TO/hearth] [N]   (tiny preset, STEPS=40 steps, a checkpoint
# every 2; a run takes a few seconds, so most kills land mid-run: the count is printed)
set -u
H=${1:-build/hearth}
N=${2:-50}
STEPS=${STEPS:-40}
FINAL=$(printf step_%08d "$STEPS")
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
for i in $(seq 200); do echo "to be or not to be, that is the question $((i % 7))"; done > "$T/corpus.txt"
RUN=(train --data "$T/corpus.txt" --preset tiny --seq 32 --batch 4 --steps "$STEPS" --sample 0 --ckpt-every 2 --eval-every 10)
"$H" "${RUN[@]}" --out "$T/ref" > /dev/null 2>&1 || { echo "the reference run failed"; exit 1; }
losses() { grep -o '"loss":[0-9.]*' "$1/metrics.jsonl"; }
matched=0 hit=0
for k in $(seq "$N"); do
  rm -rf "$T/run"
  "$H" "${RUN[@]}" --out "$T/run" > /dev/null 2>&1 & pid=$!
  sleep "$((RANDOM % 2)).$(printf %03d $((RANDOM % 1000)))" # 0 to 2 s: mostly mid-run
  kill -KILL "$pid" 2> /dev/null && hit=$((hit + 1)) # 0: the run had already finished
  wait "$pid" 2> /dev/null
  at=$(grep -c '"loss":' "$T/run/metrics.jsonl" 2> /dev/null)
  if "$H" "${RUN[@]}" --out "$T/run" > /dev/null 2>&1 && [ "$(losses "$T/ref")" = "$(losses "$T/run")" ] &&
     cmp -s "$T/ref/$FINAL/model.safetensors" "$T/run/$FINAL/model.safetensors"; then
    matched=$((matched + 1))
  else
    echo "kill $k (after ${at:-0} logged steps): differs"
  fi
done
echo "$matched/$N matched ($hit killed while running)"
[ "$matched" -eq "$N" ]
