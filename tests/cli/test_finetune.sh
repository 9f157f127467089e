#!/usr/bin/env bash
# tests/cli/test_finetune.sh: `hearth finetune` and `hearth merge` as a user runs them on the
# committed stories260K GGUF: SIGKILL mid-run and a rerun give byte-identical adapters and
# checkpoints; a quantized base (Q8_0, dequantized at load) fine-tunes; the merged model that
# `hearth generate` runs writes llama.cpp's greedy text with the committed adapter, as does
# `hearth generate --lora` with the adapter unmerged
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
for _ in $(seq 600); do [ -e "$T/b/step_00000008.ft" ] && break; sleep 0.05; done
kill -9 "$pid" 2> /dev/null
wait "$pid" 2> /dev/null
[ -e "$T/b/step_00000024.ft" ] && bad "the run finished before it was killed (machine too fast?)"
"$H" "${A[@]}" --out "$T/b" > "$T/b.out" 2>&1 || bad "rerun after SIGKILL: $(tail -2 "$T/b.out")"
grep -q "resuming from" "$T/b.out" && ok || bad "the rerun did not resume: $(cat "$T/b.out")"
cmp -s "$T/a/adapter.gguf" "$T/b/adapter.gguf" && cmp -s "$T/a/step_00000024.ft" "$T/b/step_00000024.ft" &&
  ok || bad "adapters differ after SIGKILL and resume"
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
expect_fail "other settings" "lr was" "${A[@]}" --out "$T/a" --lr 1e-3

# a quantized base: Q8_0 (dequantized at load)
"$H" quantize "$BASE" "$T/q8.gguf" Q8_0 > /dev/null 2>&1 || bad "quantize Q8_0"
"$H" finetune --base "$T/q8.gguf" --data "$T/chat.jsonl" --out "$T/q" --steps 4 --batch 2 --seq 48 \
  > "$T/q.out" 2>&1 && [ -s "$T/q/adapter.gguf" ] && ok || bad "Q8_0 base: $(tail -2 "$T/q.out")"

# a hearth run as the base (made RUN/base.gguf first); a GPT-2-family run gets no PEFT directory
for i in $(seq 200); do echo "the quick brown fox jumps over the lazy dog $i"; done > "$T/bytes.txt"
"$H" train --data "$T/bytes.txt" --out "$T/tr" --steps 2 --batch 2 --seq 32 --sample 0 > /dev/null 2>&1 &&
  "$H" finetune --base "$T/tr" --data "$T/bytes.txt" --out "$T/fr" --steps 2 --batch 2 --seq 32 \
    > "$T/fr.out" 2>&1 && [ -s "$T/fr/base.gguf" ] && [ -s "$T/fr/adapter.gguf" ] &&
  [ ! -e "$T/fr/adapter" ] && ok || bad "finetune from a run: $(tail -2 "$T/fr.out")"

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
