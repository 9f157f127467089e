#!/usr/bin/env node
// bench/tokenizer_bench.mjs: GPT-2 encode throughput of the npm peers on one text, one thread:
// js-tiktoken (pure JavaScript) and tiktoken (the Rust core compiled to WASM). Best of RUNS after
// a warm-up run.   node bench/tokenizer_bench.mjs TEXT [RUNS]
import fs from 'node:fs';
import { Tiktoken } from 'js-tiktoken/lite';
import gpt2 from 'js-tiktoken/ranks/gpt2';
import { get_encoding } from 'tiktoken';

const [file, runsArg] = process.argv.slice(2);
const runs = Number(runsArg || 5);
const text = fs.readFileSync(file, 'utf8');
const mb = Buffer.byteLength(text) / 1e6;
function best(fn) {
  let n = fn(); // warm-up (JIT), also the token count
  let t = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    n = fn();
    t = Math.min(t, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return [t, n];
}
const js = new Tiktoken(gpt2);
const [tj, nj] = best(() => js.encode(text).length);
console.log(`js-tiktoken ${mb.toFixed(2)} MB ${nj} tokens ${(mb / tj).toFixed(1)} MB/s`);
const wasm = get_encoding('gpt2');
const [tw, nw] = best(() => wasm.encode(text).length);
console.log(`tiktoken-wasm ${mb.toFixed(2)} MB ${nw} tokens ${(mb / tw).toFixed(1)} MB/s`);
wasm.free();
