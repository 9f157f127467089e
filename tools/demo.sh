#!/usr/bin/env bash
# make demo: the whole data path on a real English corpus that a Debian package ships (the
# `fortunes` quotations): a GPT-2-style BPE vocabulary trained on it, the quotations prepared as
# token shards (one document each, deduplicated, 5% held out), then the `small` preset
# (~12M parameters, GPT-2 family) trained on the shards for a few minutes, with eval, the live
# progress line, checkpoints, a crash (SIGKILL) and its resume, the loss plot and a generated
# sample; then the trained model served (`hearth serve`, the OpenAI API) and one streamed chat
# answer through the official openai client.
set -euo pipefail
cd "$(dirname "$0")/.."
HEARTH=${HEARTH:-./build/hearth}
RUN=${RUN:-runs/demo}
STEPS=${STEPS:-300}
corpus=runs/fortunes.txt      # all quotations, one text (for the tokenizer)
docs=runs/fortunes.d          # one file per quotation (the documents)
vocab=runs/fortunes-4096.htok
shards=runs/fortunes-shards
mkdir -p runs
if [ ! -s "$corpus" ]; then
  src=/usr/share/games/fortunes
  [ -d "$src" ] || { echo "demo: $src is missing: run 'make deps' (Debian package fortunes)" >&2; exit 1; }
  find "$src" -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' | sort | xargs cat > "$corpus.tmp"
  mv "$corpus.tmp" "$corpus"
fi
if [ ! -d "$docs" ]; then
  # quotations are separated by lines holding a single '%'
  rm -rf "$docs.tmp" && mkdir -p "$docs.tmp"
  awk -v d="$docs.tmp" 'BEGIN { RS = "\n%\n" } { f = sprintf("%s/%05d.txt", d, NR); printf "%s\n", $0 > f; close(f) }' "$corpus"
  mv "$docs.tmp" "$docs"
fi
echo "== corpus: $corpus ($(wc -c < "$corpus") bytes of Debian's fortunes, $(ls "$docs" | wc -l) quotations)"
echo "== hearth digits: neural network 101"
"$HEARTH" digits | tail -2
echo "== hearth tokenizer train: a 4096-token GPT-2-style vocabulary"
"$HEARTH" tokenizer train --vocab-size 4096 --out "$vocab" "$corpus"
echo "== hearth prepare: the quotations as token shards"
rm -rf "$shards"
"$HEARTH" prepare --vocab "$vocab" --out "$shards" --val-frac 0.05 "$docs"
echo "== hearth train: the small preset on the shards for $STEPS steps, a checkpoint every 100"
rm -rf "$RUN"
TRAIN=(train --data "$shards" --out "$RUN" --preset small --steps "$STEPS" --batch 8 --seq 128
  --lr 2e-3 --eval-every 50 --ckpt-every 100 --sample 120)
# A crash: the trainer is killed with SIGKILL a little after its first checkpoint is written.
# It runs as a direct child, so $! is the trainer itself (a shell function in the background
# would be a subshell: killing it would leave the trainer running).
"$HEARTH" "${TRAIN[@]}" &
pid=$!
while kill -0 "$pid" 2> /dev/null && [ ! -f "$RUN/latest" ]; do sleep 0.5; done
sleep 4
kill -9 "$pid" 2> /dev/null || true
wait "$pid" 2> /dev/null || true
echo
echo "== killed (SIGKILL) after checkpoint $(cat "$RUN/latest" 2> /dev/null); the same command resumes from it"
# ...and the same command picks the run up from its newest good checkpoint (the run directory's
# lock died with the killed trainer; a trainer still running would make this one refuse).
"$HEARTH" "${TRAIN[@]}"
ls -d "$RUN"/step_* | sed 's/^/   checkpoint: /'
echo "== loss curve: $RUN/loss.svg   metrics: $RUN/metrics.jsonl"
echo "== hearth serve: the trained model behind the OpenAI API; one streamed chat answer"
# --port 0 takes a free port; the URL is read from the server's first line
serve_log=runs/demo-serve.log
"$HEARTH" serve --model "$RUN" --model-name demo --port 0 --slots 2 > "$serve_log" 2>&1 &
serve_pid=$!
trap 'kill "$serve_pid" 2> /dev/null || true' EXIT
for _ in $(seq 300); do grep -q "ready" "$serve_log" && break; kill -0 "$serve_pid" 2> /dev/null || break; sleep 0.1; done
grep -q "ready" "$serve_log" || { echo "demo: the server did not start: $(cat "$serve_log")" >&2; exit 1; }
url=$(grep -o 'http://[^ ]*' "$serve_log" | head -1)
echo "   $url/v1/chat/completions (stream) -- user: What is the secret of a happy life?"
node --input-type=module -e '
import OpenAI from "openai";
const client = new OpenAI({ baseURL: process.argv[1] + "/v1", apiKey: "none" });
// A few minutes of quotations teach no dialogue: the model may end its turn at once. Then the
// next seed is asked, a few times at most, and every attempt is shown.
for (let seed = 1; seed <= 5; seed++) {
  const stream = await client.chat.completions.create({ model: "demo", stream: true, max_tokens: 80,
    temperature: 0.8, seed, messages: [{ role: "user", content: "What is the secret of a happy life?" }] });
  process.stdout.write(`   assistant (seed ${seed}):`);
  let text = "";
  for await (const chunk of stream) {
    const t = chunk.choices[0]?.delta?.content ?? "";
    text += t;
    process.stdout.write(t);
  }
  process.stdout.write("\n");
  if (text.trim()) break;
  console.log("   (an empty turn: the model ended it at once; asking again with another seed)");
}' "$url"
kill -INT "$serve_pid"
wait "$serve_pid" || true
trap - EXIT
echo "== server stopped"
