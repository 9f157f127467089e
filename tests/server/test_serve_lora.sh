#!/usr/bin/env bash
# tests/server/test_serve_lora.sh: `hearth serve` with LoRA adapters over one base (the committed
# stories260K GGUF): the committed adapter (tests/fixtures/finetune, llama.cpp's greedy text with
# --lora recorded) and one `hearth finetune` makes here, served side by side and driven by the
# openai npm client (lora.mjs); adapters that do not fit, and bad --lora values, refused; and
# `hearth generate --lora` over a hearth run equal to the merged model.
# Usage: test_serve_lora.sh PATH/TO/hearth
set -u
H=$(realpath "${1:?usage: test_serve_lora.sh path/to/hearth}")
DIR=$(cd "$(dirname "$0")" && pwd)
FIX="$DIR/../fixtures"
# shellcheck source=serve_lib.sh
. "$DIR/serve_lib.sh"
export OMP_NUM_THREADS=1

cp "$FIX/gguf/stories260K-F16.gguf" "$T/stories.gguf"
# a second adapter, of other targets, tuned here on another style
for i in $(seq 0 99); do echo "The cat sat on the mat number $i and purred."; done > "$T/cat.txt"
"$H" finetune --base "$T/stories.gguf" --data "$T/cat.txt" --out "$T/cat" --steps 6 --batch 4 --seq 32 \
  --lr 2e-2 --lora-targets q,v,down --threads 1 > "$T/ft.log" 2>&1 || bad "finetune: $(tail -2 "$T/ft.log")"
want=$(grep '^lora' "$FIX/finetune/greedy.tsv" | cut -f2 | "$H" tokenizer decode --vocab "$T/stories.gguf")

if start_server "$T/serve.log" --model "$T/stories.gguf" --lora "romeo=$FIX/finetune/adapter.gguf" \
  --lora "cat=$T/cat/adapter.gguf" --slots 4 --threads 1; then
  wait_ready "$T/serve.log"
  if node "$DIR/lora.mjs" "http://127.0.0.1:$PORT" stories "$want"; then ok; else bad "lora.mjs (log: $(tail -5 "$T/serve.log"))"; fi
  kill -TERM "$PID"; wait "$PID"; [ $? -eq 0 ] && ok || bad "SIGTERM: non-zero exit"
else
  bad "server did not start: $(cat "$T/serve.log")"
fi

expect_fail() {
  local name=$1 pat=$2; shift 2
  if timeout 60 "$H" serve --port 0 "$@" > "$T/out" 2> "$T/err"; then bad "$name: exited 0"; return; fi
  grep -qiE -- "$pat" "$T/err" && ok || bad "$name: stderr lacks /$pat/: $(cat "$T/err")"
}
expect_fail "no name" "--lora wants NAME=PATH" --model "$T/stories.gguf" --lora "$FIX/finetune/adapter.gguf"
expect_fail "no model" "need the model they adapt" --lora "a=$FIX/finetune/adapter.gguf" --vstore-dir "$T/vs"
expect_fail "name taken" "adapter name 'stories' is taken" --model "$T/stories.gguf" --lora "stories=$FIX/finetune/adapter.gguf"
expect_fail "twice" "adapter name 'a' is taken" --model "$T/stories.gguf" --lora "a=$T/cat/adapter.gguf" --lora "a=$T/cat/adapter.gguf"
expect_fail "a model as adapter" "adapter 'm': .*not a LoRA adapter" --model "$T/stories.gguf" --lora "m=$T/stories.gguf"
expect_fail "another model's adapter" "adapter 'r': .*blk.2.attn_q.weight.lora_a: the model has 2 layers" \
  --model "$FIX/gguf/random256-Q8_0.gguf" --lora "r=$FIX/finetune/adapter.gguf"
# the scale suffix: 0 gives the base's text
if start_server "$T/s0.log" --model "$T/stories.gguf" --lora "zero=$FIX/finetune/adapter.gguf:0" --threads 1; then
  wait_ready "$T/s0.log"
  got=$(node --input-type=module -e '
const [base] = process.argv.slice(1);
const ask = async (model) => (await (await fetch(base + "/v1/completions", { method: "POST",
  body: JSON.stringify({ model, prompt: "Once upon a time", temperature: 0, max_tokens: 12 }) })).json()).choices[0].text;
console.log((await ask("zero")) === (await ask("stories")));' "http://127.0.0.1:$PORT")
  [ "$got" = "true" ] && ok || bad "scale 0: not the base's text ($got)"
  grep -q "scale 0" "$T/s0.log" && ok || bad "scale not reported: $(cat "$T/s0.log")"
  kill -TERM "$PID"; wait "$PID"
else
  bad "server (scale 0) did not start: $(cat "$T/s0.log")"
fi

# over a hearth run (its q | k | v one matrix in hearth's RoPE order; the GPT-2 preset tiny and
# llama-tiny):
# generate --lora on the run, and on the base.gguf finetune made of it, writes the greedy text of
# the model `hearth merge` makes, which is not the base's
for i in $(seq 200); do echo "the quick brown fox jumps over the lazy dog $i"; done > "$T/b.txt"
for i in $(seq 200); do echo "a slow green turtle walks under the busy bridge $i"; done > "$T/c.txt"
for preset in tiny llama-tiny; do
  tg=q,k,v,o,up,down && [ $preset = llama-tiny ] && tg=all
  if "$H" train --data "$T/b.txt" --out "$T/r-$preset" --preset $preset --steps 30 --batch 4 --seq 32 --sample 0 > "$T/tr.log" 2>&1 &&
    "$H" finetune --base "$T/r-$preset" --data "$T/c.txt" --out "$T/f-$preset" --steps 30 --batch 4 --seq 32 \
      --lr 1e-2 --lora-targets "$tg" > "$T/ft2.log" 2>&1 &&
    "$H" merge --base "$T/f-$preset/base.gguf" --lora "$T/f-$preset/adapter.gguf" -o "$T/m-$preset.gguf" > /dev/null 2>&1; then
    gen() { "$H" generate --temperature 0 -n 30 "$@" "a slow" 2> /dev/null; }
    merged=$(gen -m "$T/m-$preset.gguf")
    [ "$(gen -m "$T/r-$preset" --lora "$T/f-$preset/adapter.gguf")" = "$merged" ] && ok || bad "$preset run + --lora != merged"
    [ "$(gen -m "$T/f-$preset/base.gguf" --lora "$T/f-$preset/adapter.gguf")" = "$merged" ] && ok || bad "$preset base.gguf + --lora != merged"
    [ "$(gen -m "$T/r-$preset")" != "$merged" ] && ok || bad "$preset: the adapter changes nothing"
  else
    bad "$preset: train / finetune / merge failed: $(tail -n 2 "$T/tr.log" "$T/ft2.log")"
  fi
done

check_sanitizer_logs
echo "test_serve_lora.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
