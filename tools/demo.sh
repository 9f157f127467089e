#!/usr/bin/env bash
# make demo: trains the `small` preset (~10.7M parameters, GPT-2 family) for a few minutes on
# a real English corpus that a Debian package ships (the `fortunes` quotations), with eval,
# the live progress line, the loss plot and a generated sample at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
HEARTH=${HEARTH:-./build/hearth}
RUN=${RUN:-runs/demo}
STEPS=${STEPS:-150}
corpus=runs/fortunes.txt
mkdir -p runs
if [ ! -s "$corpus" ]; then
  src=/usr/share/games/fortunes
  [ -d "$src" ] || { echo "demo: $src is missing: run 'make deps' (Debian package fortunes)" >&2; exit 1; }
  find "$src" -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' | sort | xargs cat > "$corpus.tmp"
  mv "$corpus.tmp" "$corpus"
fi
echo "== corpus: $corpus ($(wc -c < "$corpus") bytes of Debian's fortunes)"
echo "== hearth digits: neural network 101"
"$HEARTH" digits | tail -2
echo "== hearth train: the small preset for $STEPS steps"
rm -rf "$RUN"
"$HEARTH" train --data "$corpus" --out "$RUN" --preset small --steps "$STEPS" --batch 8 \
  --seq 128 --lr 2e-3 --eval-every 50 --sample 300
echo "== loss curve: $RUN/loss.svg   metrics: $RUN/metrics.jsonl"
