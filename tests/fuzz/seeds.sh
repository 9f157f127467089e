#!/usr/bin/env bash
# tests/fuzz/seeds.sh HEARTH OUT: the fuzz targets' seed corpora, written by hearth itself:
# OUT/<target>/ for every target that reads a file hearth writes (a tokenizer trained, a
# prepared data set, a small model trained with checkpoints, exported to safetensors and GGUF),
# plus a copy of the committed seeds (tests/fuzz/seeds/<target>/: request bodies, filters,
# the trainer.json the trainer target's own checkpoint accepts). Small on purpose: libFuzzer's
# inputs grow from these. Takes a few seconds.
set -euo pipefail
H=$(realpath "$1")
OUT=$2
HERE=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$OUT"
for t in gguf safetensors htok shard manifest trainer openai chroma where docs; do mkdir -p "$OUT/$t"; done
cp -r "$HERE"/seeds/. "$OUT"/

# a corpus of many small documents (one per line of the tokenizer tests' corpus)
corpus="$HERE/../tokenizer/corpus.txt"
node_free_jsonl() { # each non-empty line as {"text": ...}, escaped by the shell-free python-less way
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    line=${line//\\/\\\\}
    line=${line//\"/\\\"}
    line=${line//$'\t'/\\t}
    printf '{"text": "%s"}\n' "$line"
  done < "$corpus"
}
node_free_jsonl > "$work/docs.jsonl"

q() { "$@" > "$work/log" 2>&1 || { cat "$work/log" >&2; echo "seeds.sh: failed: $*" >&2; exit 1; }; }
q "$H" tokenizer train --vocab-size 320 --out "$work/gpt2.htok" "$corpus"
q "$H" tokenizer train --vocab-size 300 --pattern cl100k --special '<|endoftext|>' \
    --special '<|im_start|>' --out "$work/cl100k.htok" "$corpus"
cp "$work/gpt2.htok" "$work/cl100k.htok" "$OUT/htok/"

q "$H" prepare --vocab "$work/gpt2.htok" --out "$work/data" --val-frac 0.2 "$work/docs.jsonl"
for f in "$work"/data/*.bin; do cp "$f" "$OUT/shard/$(basename "$f")"; done

small=(--n-layer 1 --d-model 16 --n-head 2 --d-ff 32 --max-seq 16 --seq 16 --batch 2 --steps 2
       --ckpt-every 2 --eval-every 2 --eval-batches 1 --sample 0)
q "$H" train --data "$work/data" --out "$work/gpt2" --preset tiny "${small[@]}"
q "$H" train --data "$work/data" --out "$work/llama" --preset llama-tiny --n-kv-head 1 "${small[@]}"
for fam in gpt2 llama; do
  step="$work/$fam/step_00000002"
  cp "$step/manifest.json" "$OUT/manifest/$fam.json"
  cp "$step/trainer.json" "$OUT/trainer/$fam.json"
  cp "$step/model.safetensors" "$OUT/safetensors/$fam-model.safetensors"
  cp "$step/optimizer.safetensors" "$OUT/safetensors/$fam-optimizer.safetensors"
  q "$H" export "$work/$fam" --format safetensors -o "$OUT/safetensors/$fam.safetensors"
  rm -f "$OUT/safetensors/$fam.htok" # the tokenizer export writes beside it
  q "$H" export "$work/$fam" --format gguf -o "$OUT/gguf/$fam.gguf"
done
# quantized GGUF files (hearth quantize, so they reach the engine's typed loader), each under
# run.sh's -max_len (128 KiB, or libFuzzer cuts them short): a Llama of width 32 (rows that fit
# the legacy types' blocks of 32) and FFN 256 (ffn_down's rows fit the K-quants' 256), in the
# legacy types and the K-quant mixes (the other matrices fall back: Q4_K -> Q5_0, Q6_K -> Q8_0,
# Q2_K -> Q4_0), and the small models (width 16: everything falls back to F16)
q "$H" train --data "$work/data" --out "$work/wide" --preset llama-tiny --n-layer 1 --d-model 32 \
    --n-head 2 --n-kv-head 1 --d-ff 256 --max-seq 16 --seq 16 --batch 1 --steps 1 --ckpt-every 1 \
    --eval-every 1 --eval-batches 1 --sample 0
q "$H" export "$work/wide" --format gguf -o "$work/wide.gguf"
for t in Q8_0 Q4_0 Q5_1 Q2_K Q4_K_M Q5_K_S Q6_K; do
  q "$H" quantize "$work/wide.gguf" "$OUT/gguf/wide-$t.gguf" "$t"
done
q "$H" quantize "$work/llama" "$OUT/gguf/llama-Q4_K_M.gguf" Q4_K_M
q "$H" export "$work/gpt2" --format gguf --type Q8_0 -o "$OUT/gguf/gpt2-Q8_0.gguf"
# a LoRA adapter (fuzz_gguf reads one for the committed stories260K it was tuned on)
cp "$HERE/../fixtures/finetune/adapter.gguf" "$OUT/gguf/adapter.gguf"
echo "seeds: $(find "$OUT" -type f | wc -l) files in $OUT"
