#!/usr/bin/env node
// tools/tiktoken_export.js: writes the BPE ranks that the npm package js-tiktoken ships as a
// standard tiktoken ranks file (one "BASE64 RANK" line per token, as OpenAI's *.tiktoken files),
// which `hearth tokenizer import --tiktoken` reads. Prints the encoding's special tokens as
// TEXT=ID lines on stdout, ready for --special.
//   node tools/tiktoken_export.js gpt2|cl100k_base|p50k_base|r50k_base|o200k_base OUT
'use strict';
const fs = require('fs');
const path = require('path');

const [name, out] = process.argv.slice(2);
if (!name || !out || !/^[a-z0-9_]+$/.test(name)) {
  process.stderr.write('usage: tiktoken_export.js ENCODING OUT\n');
  process.exit(2);
}
let ranks;
try {
  ranks = require(path.join(__dirname, '..', 'node_modules', 'js-tiktoken', 'dist', 'ranks', name + '.cjs'));
} catch (err) {
  process.stderr.write(`tiktoken_export: cannot load js-tiktoken's ${name} ranks (run make deps): ${err.message}\n`);
  process.exit(1);
}
// js-tiktoken's compact form: lines of "PREFIX OFFSET TOKEN TOKEN ...", consecutive ranks.
const lines = [];
for (const line of ranks.bpe_ranks.split('\n')) {
  if (!line) continue;
  const [, offset, ...tokens] = line.split(' ');
  const base = Number.parseInt(offset, 10);
  tokens.forEach((tok, i) => lines.push(`${tok} ${base + i}`));
}
fs.writeFileSync(out, lines.join('\n') + '\n');
for (const [text, id] of Object.entries(ranks.special_tokens)) process.stdout.write(`${text}=${id}\n`);
