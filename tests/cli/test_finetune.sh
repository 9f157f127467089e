#!/usr/bin/env bash
# tests/cli/test_finetune.sh: `hearth finetune` and `hearth merge` as a user runs them on the
# committed stories260K GGUF: SIGKILL mid-run and a rerun give byte-identical adapters and
# checkpoints; a quantized base (Q8_0, kept quantized: QLoRA) fine-tunes, and a Q4_0 one peaks
# well below its F32 copy; the merged model that `hearth generate` runs writes llama.cpp's greedy
# text with the committed adapter, as does `hearth generate --lora` with the adapter unmerged
# (tests/fixtures/finetune/greedy.tsv); PEFT's files; bad input gets a clear message.
# Usage: test_finetune.sh PATH/TO/hearth
set -u
H=${1:?usage: test_finetune.sh path/to/hearth}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
export OMP_NUM_THREADS=1 # one thread: a loaded 2-core machine makes 2 spin-waiting OpenMP threads crawl
BASE=tests/fixtures/gguf/stories260K-F16.gguf
FIX=tests/fixtures/finetune

expect_fail() {
  local name=$1 pat=$2; shift 2
  if "$H" "$@" > "$T/out" 2> "$T/err"; then bad "$name: exited 0"; return; fi
  grep -qiE -- "$pat" "$T/err" || { bad "$name: stderr lacks /$pat/: $(cat "$T/err")"; return; }
  ok
}

for i in $(seq 0 299); do
  echo "{\"messages\": [{\"role\": \"user\", \"content\": \"Say line $((i % 9)).\"}, {\"role\": \"assistant\", \"content\": \"Thou art my sun number $((i % 9)), sweet lady.\"}]}"
done > "$T/chat.jsonl"

# SIGKILL after the second checkpoint, rerun: the same adapter and last checkpoint, byte for byte
A=(finetune --base "$BASE" --data "$T/chat.jsonl" --steps 24 --batch 4 --seq 48 --lr 3e-3
  --ckpt-every 4 --eval-every 8 --lora-dropout 0.1 --lora-targets q,v,down --threads 1)
"$H" "${A[@]}" --out "$T/a" > "$T/a.out" 2>&1 || bad "uninterrupted run: $(tail -2 "$T/a.out")"
"$H" "${A[@]}" --out "$T/b" > /dev/null 2>&1 &
pid=$!
for _ in $(seq 600); do [ -e "$T/b/step_00000008/manifest.json" ] && break; sleep 0.05; done
kill -9 "$pid" 2> /dev/null
wait "$pid" 2> /dev/null
[ -e "$T/b/step_00000024" ] && bad "the run finished before it was killed (machine too fast?)"
"$H" "${A[@]}" --out "$T/b" > "$T/b.out" 2>&1 || bad "rerun after SIGKILL: $(tail -2 "$T/b.out")"
grep -q "resuming from" "$T/b.out" && ok || bad "the rerun did not resume: $(cat "$T/b.out")"
same_ckpt() { # same_ckpt RUN_A RUN_B STEP: the adapters and their AdamW state, byte for byte
  local s
  s=$(printf 'step_%08d' "$3")
  cmp -s "$1/$s/model.safetensors" "$2/$s/model.safetensors" &&
    cmp -s "$1/$s/optimizer.safetensors" "$2/$s/optimizer.safetensors"
}
cmp -s "$T/a/adapter.gguf" "$T/b/adapter.gguf" && same_ckpt "$T/a" "$T/b" 24 &&
  ok || bad "adapters differ after SIGKILL and resume"
# train's loop: the progress line with its ETA, background checkpoints with their costs, a
# checkpoint of the adapters only (their tensors by name; small)
grep -q "step 24/24 | loss .* | ETA " "$T/a.out" && ok || bad "no progress line with ETA: $(cat "$T/a.out")"
grep -q '"step":8,"ckpt":"step_00000008","snapshot_ms":[0-9.e-]*,"wait_ms"' "$T/a/metrics.jsonl" && ok ||
  bad "no background checkpoint costs in metrics.jsonl"
grep -qa 'blk.0.attn_q.lora_a' "$T/a/step_00000024/model.safetensors" &&
  [ "$(stat -c %s "$T/a/step_00000024/model.safetensors")" -lt 200000 ] && ok ||
  bad "the checkpoint does not hold just the adapters"
# --resume PATH: another run's checkpoint, continued in a new directory, gives the same adapter
"$H" "${A[@]}" --out "$T/c" --resume "$T/a/step_00000016" > "$T/c.out" 2>&1 &&
  grep -q "resuming from .*step_00000016 (step 16)" "$T/c.out" &&
  cmp -s "$T/a/adapter.gguf" "$T/c/adapter.gguf" && ok || bad "--resume: $(tail -3 "$T/c.out")"
# --keep-last prunes the checkpoints as train does
"$H" "${A[@]}" --out "$T/k" --keep-last 2 --steps 12 > "$T/k.out" 2>&1 &&
  [ "$(ls -d "$T"/k/step_* | wc -l)" -eq 2 ] && ok || bad "--keep-last 2: $(ls "$T/k")"
grep -q "held-out loss" "$T/a.out" && ok || bad "no held-out loss line: $(cat "$T/a.out")"
[ "$(grep -c '"val_loss"' "$T/a/metrics.jsonl")" -ge 4 ] && ok || bad "evals missing in metrics.jsonl"
[ -s "$T/a/loss.svg" ] && ok || bad "no loss.svg"
# PEFT: safetensors with lora_A/lora_B under Hugging Face names; config with r and alpha
grep -q '"peft_type": "LORA"' "$T/a/adapter/adapter_config.json" &&
  grep -q '"r": 8' "$T/a/adapter/adapter_config.json" &&
  grep -q '"v_proj"' "$T/a/adapter/adapter_config.json" && ok ||
  bad "adapter_config.json: $(cat "$T/a/adapter/adapter_config.json")"
grep -qa 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight' \
  "$T/a/adapter/adapter_model.safetensors" && ok || bad "PEFT tensor names"
# a changed setting into the same directory is refused by name
expect_fail "other settings" "lr is 0.003 there, 0.001 in this run .use another --out" "${A[@]}" --out "$T/a" --lr 1e-3

# a quantized base: Q8_0 (kept in Q8_0, dequantized per product: QLoRA)
"$H" quantize "$BASE" "$T/q8.gguf" Q8_0 > /dev/null 2>&1 || bad "quantize Q8_0"
"$H" finetune --base "$T/q8.gguf" --data "$T/chat.jsonl" --out "$T/q" --steps 4 --batch 2 --seq 48 \
  > "$T/q.out" 2>&1 && [ -s "$T/q/adapter.gguf" ] && ok || bad "Q8_0 base: $(tail -2 "$T/q.out")"

# a hearth run as the base (made RUN/base.gguf first); a GPT-2-family run gets no PEFT directory
for i in $(seq 200); do echo "the quick brown fox jumps over the lazy dog $i"; done > "$T/bytes.txt"

# QLoRA's memory: a LoRA step on a Q4_0 base peaks well below the same base in F32 (a Llama with
# biases, 16M parameters: 64 MB of F32 matrices against a 9 MB file); peak = the child's maxrss
peak() {
  /usr/bin/python3 -c 'import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if r.returncode == 0 else -1)' "$@"
}
MEM=(--family llama --d-model 512 --n-layer 4 --n-head 8 --n-kv-head 4 --d-ff 2048 --max-seq 64)
if "$H" train --data "$T/bytes.txt" --out "$T/mem" "${MEM[@]}" --steps 1 --batch 1 --seq 16 \
  --sample 0 > /dev/null 2>&1 && "$H" export "$T/mem" -o "$T/mem32.gguf" > /dev/null 2>&1 &&
  "$H" quantize "$T/mem32.gguf" "$T/mem4.gguf" Q4_0 > /dev/null 2>&1; then
  FT=(finetune --data "$T/bytes.txt" --steps 1 --batch 1 --seq 16 --val-frac 0 --threads 1)
  p32=$(peak "$H" "${FT[@]}" --base "$T/mem32.gguf" --out "$T/mem-f32")
  p4=$(peak "$H" "${FT[@]}" --base "$T/mem4.gguf" --out "$T/mem-q4")
  [ "$p4" -gt 0 ] && [ "$p32" -gt 0 ] && [ $((p32 - p4)) -gt 30000 ] && [ $((p4 * 10)) -lt $((p32 * 7)) ] &&
    ok || bad "QLoRA peak memory: F32 base $p32 KB, Q4_0 base $p4 KB"
else
  bad "QLoRA memory check: making the F32 and Q4_0 bases failed"
fi
rm -rf "$T/mem" "$T/mem-f32" "$T/mem-q4" "$T/mem32.gguf" "$T/mem4.gguf"
"$H" train --data "$T/bytes.txt" --out "$T/tr" --steps 2 --batch 2 --seq 32 --sample 0 > /dev/null 2>&1 &&
  "$H" finetune --base "$T/tr" --data "$T/bytes.txt" --out "$T/fr" --steps 2 --batch 2 --seq 32 \
    > "$T/fr.out" 2>&1 && [ -s "$T/fr/base.gguf" ] && [ -s "$T/fr/adapter.gguf" ] &&
  [ ! -e "$T/fr/adapter" ] && ok || bad "finetune from a run: $(tail -2 "$T/fr.out")"

# a fine-tuning run directory as --model: a LoRA run says how to run its base with the adapter
# (its checkpoints hold only the adapters); a --full run runs its model.gguf
expect_fail "LoRA run as a model" "is a LoRA fine-tuning run: give its base with the adapter \(--model .*stories260K-F16.gguf --lora .*/a/adapter.gguf\)" \
  generate -m "$T/a" -n 4 "Once"
expect_fail "LoRA checkpoint as a model" "is a LoRA fine-tuning run" generate -m "$T/a/step_00000024" -n 4 "Once"
"$H" finetune --base "$BASE" --data "$T/chat.jsonl" --out "$T/full" --full --steps 2 --batch 2 --seq 48 \
  > "$T/full.out" 2>&1 && "$H" generate -m "$T/full" --temperature 0 -n 8 "Once" > /dev/null 2>&1 &&
  ok || bad "a --full run as a model: $(tail -2 "$T/full.out")"

# merge + generate = llama.cpp's greedy tokens with --lora (the committed adapter)
"$H" merge --base "$BASE" --lora "$FIX/adapter.gguf" -o "$T/m.gguf" > /dev/null 2>&1 || bad "merge"
want=$(grep '^merged' "$FIX/greedy.tsv" | cut -f2 | "$H" tokenizer decode --vocab "$BASE")
got=$("$H" generate -m "$T/m.gguf" --temperature 0 -n 40 --kv-type f32 "Once upon a time" 2> /dev/null)
[ "$got" = "$want" ] && ok || bad "merged greedy text: '$got' != llama.cpp's '$want'"
# the adapter unmerged over the base (generate --lora): llama.cpp's greedy tokens with --lora
want=$(grep '^lora' "$FIX/greedy.tsv" | cut -f2 | "$H" tokenizer decode --vocab "$BASE")
got=$("$H" generate -m "$BASE" --lora "$FIX/adapter.gguf" --temperature 0 -n 40 "Once upon a time" 2> /dev/null)
[ "$got" = "$want" ] && ok || bad "generate --lora greedy text: '$got' != llama.cpp's '$want'"
"$H" merge --base "$BASE" --lora "$FIX/adapter.gguf" -o "$T/m8.gguf" --type Q8_0 > /dev/null 2>&1 &&
  "$H" generate -m "$T/m8.gguf" --temperature 0 -n 8 "Once" > /dev/null 2>&1 && ok || bad "merge --type Q8_0"
"$H" merge --base "$BASE" --lora "$FIX/adapter.gguf" -o "$T/m.safetensors" --format safetensors \
  > /dev/null 2>&1 && [ -s "$T/m.htok" ] && ok || bad "merge --format safetensors"

# bad input
expect_fail "no base" "required" finetune --data "$T/chat.jsonl" --out "$T/x"
expect_fail "not GGUF" "not a GGUF file" finetune --base "$T/chat.jsonl" --data "$T/chat.jsonl" --out "$T/x"
printf '{"messages": [{"role": "user", "content": "a"}]}\n{"messages": 3}\n' > "$T/bad.jsonl"
expect_fail "malformed line" "bad.jsonl:2: \"messages\" must be" finetune --base "$BASE" --data "$T/bad.jsonl" --out "$T/x"
printf '{"messages": [{"role": "user", "content": "a"}]}\n' > "$T/none.jsonl"
expect_fail "nothing to learn" "no trainable token" finetune --base "$BASE" --data "$T/none.jsonl" --out "$T/x"
expect_fail "targets" "unknown LoRA target 'query'" finetune --base "$BASE" --data "$T/chat.jsonl" --out "$T/x" --lora-targets q,query
expect_fail "seq too long" "longer than the base" finetune --base "$BASE" --data "$T/chat.jsonl" --out "$T/x" --seq 4096
expect_fail "merge not an adapter" "not a LoRA adapter" merge --base "$BASE" --lora "$BASE" -o "$T/y.gguf"

echo "test_finetune.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
