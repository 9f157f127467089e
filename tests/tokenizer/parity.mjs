#!/usr/bin/env node
// tests/tokenizer/parity.mjs: hearth's tokenizer against the npm reference implementations, run
// by `make test` as: node tests/tokenizer/parity.mjs build/hearth
//  - GPT-2 and cl100k_base: js-tiktoken's own ranks, imported with `hearth tokenizer import`,
//    on a varied corpus (tests/tokenizer/corpus.txt, generated strings) and a sweep over code
//    points; ids must be identical, and decode must give the bytes back.
//  - Llama (SentencePiece-style): llama-tokenizer-js's own vocabulary and merges, written here as
//    a GGUF file (scores from its merge order), encoded by hearth from that GGUF.
// Known, documented difference: PCRE2 10.42 (Debian 12) has Unicode 14 tables, Node 20 knows
// Unicode 16; code points assigned since then as letters or numbers (KNOWN below) may split
// differently. The sweep counts them separately; a mismatch anywhere else fails.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const hearth = path.resolve(process.argv[2] || 'build/hearth');
if (!fs.existsSync(path.join(root, 'node_modules', 'js-tiktoken'))) {
  console.error('parity: FAIL: node_modules is missing (run make deps)');
  process.exit(1);
}
const { Tiktoken } = await import('js-tiktoken/lite');
const { default: llama } = await import('llama-tokenizer-js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-parity-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

let failures = 0;
const fail = (msg) => { failures++; console.error('parity: FAIL: ' + msg); };
const run = (args, input) => execFileSync(hearth, args, { input, maxBuffer: 1 << 30 });
const ids = (out) => { const s = out.toString().trim(); return s ? s.split(' ').map(Number) : []; };
const enc8 = (s) => Buffer.from(s, 'utf8');

// ---- test strings
const KNOWN = [ // [lo, hi]: letters/numbers newer than Unicode 14 (Node 20: Unicode 16)
  [0x88f, 0x88f], [0xc5c, 0xc5c], [0xcdc, 0xcdc], [0x1c89, 0x1c8a], [0xa7cb, 0xa7cf], [0xa7d2, 0xa7d2],
  [0xa7d4, 0xa7d4], [0xa7da, 0xa7dc], [0xa7f1, 0xa7f1], [0x105c0, 0x105f3], [0x10940, 0x10959],
  [0x10d40, 0x10d65], [0x10d6f, 0x10d85], [0x10ec2, 0x10ec7], [0x1123f, 0x11240], [0x11380, 0x113d3],
  [0x116d0, 0x116e3], [0x11bc0, 0x11bf9], [0x11db0, 0x11de9], [0x11f02, 0x11f59], [0x1342f, 0x1342f],
  [0x13441, 0x13446], [0x13460, 0x143fa], [0x16100, 0x16139], [0x16d40, 0x16d79], [0x16ea0, 0x16ed3],
  [0x16ff2, 0x16ff6], [0x187f8, 0x187ff], [0x18cff, 0x18cff], [0x18d09, 0x18d1e], [0x18d80, 0x18df2],
  [0x1b132, 0x1b132], [0x1b155, 0x1b155], [0x1ccf0, 0x1ccf9], [0x1d2c0, 0x1d2d3], [0x1df25, 0x1df2a],
  [0x1e030, 0x1e06d], [0x1e4d0, 0x1e4f9], [0x1e5d0, 0x1e5fa], [0x1e6c0, 0x1e6ff], [0x2b739, 0x2b73f],
  [0x2cea2, 0x2cead], [0x2ebf0, 0x2ee5d], [0x31350, 0x33479],
];
const known = (cp) => KNOWN.some(([lo, hi]) => cp >= lo && cp <= hi);

let seed = 0x9e3779b9; // mulberry32: the same strings every run
const rnd = () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const pick = (a) => a[Math.floor(rnd() * a.length)];
const int = (n) => Math.floor(rnd() * n);
const cpIn = (lo, hi) => String.fromCodePoint(lo + int(hi - lo + 1));
const anyCp = () => {
  for (;;) {
    const cp = rnd() < 0.7 ? int(0x10000) : 0x10000 + int(0x100000);
    if ((cp < 0xd800 || cp > 0xdfff) && !known(cp)) return String.fromCodePoint(cp);
  }
};
const WS = [' ', '  ', '\t', '\n', '\r\n', '\r', '\u00a0', '\u3000', '\u2003', '\u0085', '\u180e',
  '\ufeff', '\u2028', '\u2029', '\v', '\f', '\u202f', '\u1680'];
const WORDS = ['the', 'The', 'THE', 'token', 'Tokenizer', 'don', 'isn', 'caf\u00e9', 'na\u00efve', 'x',
  'stra\u00dfe', '\u00c5ngstr\u00f6m', 'i', 'I', 'hearth', 'GGUF', 'bpe', 'llama', 'zzz', 'Q'];
const atoms = [
  () => pick(WORDS),
  () => pick(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ll", "'D", "'", "''"]),
  () => String(int(10 ** (1 + int(9)))) + (rnd() < 0.3 ? String(int(1e9)) : ''),
  () => Array.from({ length: 1 + int(4) }, () => pick(WS)).join(''),
  () => pick(['!', '?', '...', '--', '.', ',', ';', ':', '(', ')', '[', ']', '{', '}', '<', '>', '"',
    '#', '$', '%', '&', '*', '+', '-', '/', '\\', '|', '~', '`', '^', '_', '=', '@', '\u2014', '\u00bf', '\u00a7']),
  () => Array.from({ length: 1 + int(6) }, () => cpIn(0x4e00, 0x9fff)).join(''),
  () => Array.from({ length: 1 + int(6) }, () => cpIn(0x3041, 0x30ff)).join(''),
  () => Array.from({ length: 1 + int(4) }, () => cpIn(0xac00, 0xd7a3)).join(''),
  () => Array.from({ length: 1 + int(8) }, () => pick([cpIn(0x410, 0x44f), cpIn(0x3b1, 0x3c9), cpIn(0x5d0, 0x5ea),
    cpIn(0x627, 0x64a), cpIn(0x905, 0x939), cpIn(0xe01, 0xe30)])).join(''),
  () => pick(['\u{1F600}', '\u{1F44D}\u{1F3FD}', '\u{1F468}\u200d\u{1F469}\u200d\u{1F467}', '\u2764\ufe0f',
    '\u{1F1EB}\u{1F1F7}', '\u{1F3F3}\ufe0f\u200d\u{1F308}', '1\ufe0f\u20e3', cpIn(0x1f300, 0x1faff)]),
  () => pick(['a', 'e', 'o', 'n', ' ', 'Z']) + Array.from({ length: 1 + int(4) }, () => cpIn(0x300, 0x36f)).join(''),
  () => Array.from({ length: 1 + int(5) }, anyCp).join(''),
  () => pick(['a', 'e', 'Z', '\u00e9', '\u4e00']).repeat(20 + int(100)), // long pieces: the heap path
  () => '9'.repeat(10 + int(100)),
  () => pick(WS).repeat(5 + int(60)),
  () => '<|endoftext|>'.slice(0, int(14)),
];
const strings = [];
const corpus = fs.readFileSync(path.join(here, 'corpus.txt'));
const decoder = new TextDecoder('utf-8', { fatal: true });
let corpusBytes = 0;
for (const sec of corpus.toString('latin1').split('\n%%\n')) {
  let text;
  try { text = decoder.decode(Buffer.from(sec, 'latin1')); } catch { continue; } // the invalid-UTF-8 section
  strings.push(text, ...text.split('\n'));
  corpusBytes += enc8(text).length;
}
const nCorpus = strings.length;
for (let i = 0; i < 600; i++) {
  let s = '';
  const n = 1 + int(rnd() < 0.2 ? 60 : 12);
  for (let k = 0; k < n; k++) s += pick(atoms)();
  strings.push(s);
}
const noSpecial = strings.map((s) => s.replaceAll('<|endoftext|>', '<|endoftext|'));

// Compares segment by segment (segments end at sep in both id lists) and reports.
function compare(name, ref, got, sep, texts, isKnown) {
  const split = (a) => { const out = [[]]; for (const x of a) { if (x === sep) out.push([]); else out[out.length - 1].push(x); } return out; };
  const rs = split(ref), gs = split(got);
  if (rs.length !== gs.length) { fail(`${name}: ${rs.length} segments vs ${gs.length}`); return { bad: 1, knownBad: 0 }; }
  let bad = 0, knownBad = 0;
  for (let i = 0; i < rs.length; i++) {
    if (rs[i].length === gs[i].length && rs[i].every((x, k) => x === gs[i][k])) continue;
    if (isKnown && isKnown(texts[i])) { knownBad++; continue; }
    bad++;
    if (bad <= 3) fail(`${name}: ${JSON.stringify(texts[i]).slice(0, 200)}\n  js:     ${rs[i].slice(0, 40)}\n  hearth: ${gs[i].slice(0, 40)}`);
  }
  if (bad > 3) fail(`${name}: ${bad} mismatching strings in all`);
  return { bad, knownBad };
}

// ---- byte-level BPE: GPT-2 and cl100k_base
for (const [name, pattern] of [['gpt2', 'gpt2'], ['cl100k_base', 'cl100k']]) {
  const { default: ranks } = await import(`js-tiktoken/ranks/${name}`);
  const tk = new Tiktoken(ranks);
  const eot = ranks.special_tokens['<|endoftext|>'];
  const rankFile = path.join(tmp, name + '.tiktoken'), vocab = path.join(tmp, name + '.htok');
  const specials = execFileSync(process.execPath, [path.join(root, 'tools', 'tiktoken_export.js'), name, rankFile])
    .toString().trim().split('\n');
  run(['tokenizer', 'import', '--tiktoken', rankFile, '--pattern', pattern, '--out', vocab,
    ...specials.flatMap((s) => ['--special', s])]);
  // 1. the strings, each alone: joined by <|endoftext|>, which both cut at
  const joined = noSpecial.join('<|endoftext|>');
  const got = ids(run(['tokenizer', 'encode', '--vocab', vocab, '--special'], enc8(joined)));
  const ref = tk.encode(joined, 'all');
  const r1 = compare(`${name} strings`, ref, got, eot, noSpecial);
  // 2. one text with special-token text in it, specials not allowed (plain text)
  const plain = strings.slice(0, nCorpus + 100).join('\n');
  const got2 = ids(run(['tokenizer', 'encode', '--vocab', vocab], enc8(plain)));
  const ref2 = tk.encode(plain, [], []);
  if (got2.join(' ') !== ref2.join(' ')) fail(`${name}: the whole text (specials as text) differs`);
  // 3. decode gives the bytes back
  const back = run(['tokenizer', 'decode', '--vocab', vocab], Buffer.from(got.join(' ')));
  if (!back.equals(enc8(joined))) fail(`${name}: decode(encode(text)) != text`);
  // 4. the code point sweep: each code point alone, beside letters, digits and spaces
  const cps = [];
  for (let cp = 0; cp < 0x10000; cp++) if (cp < 0xd800 || cp > 0xdfff) cps.push(cp);
  for (let cp = 0x10000; cp < 0x40000; cp += 7) cps.push(cp);
  for (let cp = 0xe0000; cp < 0xe0200; cp++) cps.push(cp);
  const sweep = cps.map((cp) => { const c = String.fromCodePoint(cp); return `${c}a${c} ${c}1`; });
  const sj = sweep.join('<|endoftext|>');
  const got3 = ids(run(['tokenizer', 'encode', '--vocab', vocab, '--special'], enc8(sj)));
  const r3 = compare(`${name} code points`, tk.encode(sj, 'all'), got3, eot, sweep, (t) => known(t.codePointAt(0)));
  const bytes = enc8(joined).length + enc8(plain).length + enc8(sj).length;
  console.log(`parity ${name}: ${noSpecial.length} strings + 1 text + ${cps.length} code points, ` +
    `${(bytes / 1e6).toFixed(2)} MB, ${ref.length + ref2.length} + ${got3.length} ids: ` +
    `${r1.bad + r3.bad} mismatches (${r3.knownBad} code points in the known Unicode 15-16 ranges)`);
}

// ---- Llama: llama-tokenizer-js's vocabulary as a GGUF file
function gguf(kv) {
  const parts = [];
  const u32 = (x) => { const b = Buffer.alloc(4); b.writeUInt32LE(x); parts.push(b); };
  const u64 = (x) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(x)); parts.push(b); };
  const str = (s) => { const b = enc8(s); u64(b.length); parts.push(b); };
  parts.push(Buffer.from('GGUF')); u32(3); u64(0); u64(kv.length);
  for (const [key, type, val] of kv) {
    str(key);
    if (type === 'str') { u32(8); str(val); }
    else if (type === 'u32') { u32(4); u32(val); }
    else if (type === 'bool') { u32(7); parts.push(Buffer.from([val ? 1 : 0])); }
    else if (type === 'str[]') { u32(9); u32(8); u64(val.length); val.forEach(str); }
    else if (type === 'i32[]') { u32(9); u32(5); u64(val.length); const b = Buffer.alloc(4 * val.length); val.forEach((x, i) => b.writeInt32LE(x, 4 * i)); parts.push(b); }
    else if (type === 'f32[]') { u32(9); u32(6); u64(val.length); const b = Buffer.alloc(4 * val.length); val.forEach((x, i) => b.writeFloatLE(x, 4 * i)); parts.push(b); }
  }
  return Buffer.concat(parts);
}
{
  const tokens = llama.vocabById;
  // score = minus the first merge that makes the token (its priority); other tokens never merge
  const score = new Array(tokens.length).fill(-1e9);
  for (const [pair, prio] of llama.merges) {
    const id = llama.vocabByString.get(pair.replace(' ', ''));
    if (id !== undefined && score[id] === -1e9) score[id] = -prio;
  }
  const type = tokens.map((t, i) => (i === 0 ? 2 : i <= 2 ? 3 : /^<0x[0-9A-F]{2}>$/.test(t) ? 6 : 1));
  const file = path.join(tmp, 'llama.gguf');
  fs.writeFileSync(file, gguf([
    ['general.architecture', 'str', 'llama'], ['tokenizer.ggml.model', 'str', 'llama'],
    ['tokenizer.ggml.tokens', 'str[]', tokens], ['tokenizer.ggml.scores', 'f32[]', score],
    ['tokenizer.ggml.token_type', 'i32[]', type], ['tokenizer.ggml.bos_token_id', 'u32', 1],
    ['tokenizer.ggml.eos_token_id', 'u32', 2], ['tokenizer.ggml.unknown_token_id', 'u32', 0],
    ['tokenizer.ggml.add_space_prefix', 'bool', true],
  ]));
  const enc = (s) => ids(run(['tokenizer', 'encode', '--vocab', file], enc8(s)));
  // the whole corpus as one text, then strings one by one (the space prefix at each start)
  const text = strings.join('\n');
  let bad = 0, n = 1, bytes = enc8(text).length;
  const ref = llama.encode(text, false, true), got = enc(text);
  if (ref.join(' ') !== got.join(' ')) { bad++; fail('llama: the whole text differs'); }
  const back = run(['tokenizer', 'decode', '--vocab', file], Buffer.from(got.join(' ')));
  if (!back.equals(enc8(text))) fail('llama: decode(encode(text)) != text');
  for (let i = 0; i < strings.length; i += 7) {
    const s = strings[i];
    n++;
    bytes += enc8(s).length;
    const r = llama.encode(s, false, true), g = enc(s);
    if (r.join(' ') !== g.join(' ')) {
      if (++bad <= 3) fail(`llama: ${JSON.stringify(s).slice(0, 200)}\n  js:     ${r.slice(0, 40)}\n  hearth: ${g.slice(0, 40)}`);
    }
  }
  console.log(`parity llama: ${n} texts, ${(bytes / 1e6).toFixed(2)} MB, ${ref.length} + ids: ${bad} mismatches`);
}
console.log(failures ? `parity: ${failures} failures` : 'parity: all identical');
process.exit(failures ? 1 : 0);
