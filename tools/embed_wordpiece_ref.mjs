// tools/embed_wordpiece_ref.mjs: records Hugging Face's WordPiece ids (the `tokenizers` npm
// package: the Rust library itself, run offline from a tokenizer.json) for a varied set of
// texts into tests/fixtures/embed/wordpiece.json, which tests/embed/test_embed.c compares
// hearth's tokenizer against (with tests/fixtures/embed/minilm_vocab.txt and
// minilm_tokenizer.json, copies of the same model's vocab.txt and tokenizer.json).
//   node tools/embed_wordpiece_ref.mjs ../shared/data/models/all-MiniLM-L6-v2-tokenizer/tokenizer.json
import { Tokenizer } from "tokenizers";
import { writeFileSync } from "node:fs";

const path = process.argv[2];
if (!path) {
  console.error("usage: node tools/embed_wordpiece_ref.mjs TOKENIZER.json [OUT.json]");
  process.exit(2);
}
const out = process.argv[3] || "tests/fixtures/embed/wordpiece.json";
const long = "pneumonoultramicroscopicsilicovolcanoconiosis".repeat(3); // 135 chars: [UNK]
const texts = [
  "Hello, World! How are you doing today?",
  "Héllo wörld: naïve café, façade, Ångström, résumé — “quoted” ‘text’…",
  "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX!!!",
  "中文字符和日本語の漢字、한국어 텍스트: がぎぐ パピプ",
  "emoji 🤗🚀 and symbols ©®™ €£¥ ½ ∑∫√ → ⇒ ♥",
  "control\u0007chars\u001fhere\u200bzero\u00adsoft\ufeffbom\ue000private",
  "tabs\tand\nnewlines\r\nand  many   spaces\u00a0nbsp\u3000ideographic\u2028sep",
  "supercalifragilisticexpialidocious antidisestablishmentarianism " + long,
  "ΟΔΥΣΣΕΥΣ Σίσυφος İstanbul STRASSE straße ǅemal ﬁnance",
  "e-mail: john.doe@example.com, url: https://example.org/a_b?c=d&e=f#g",
  "numbers 3.14159, 1,000,000 and 2024-01-02T03:04:05Z; (parens) [brackets] {braces}",
  "[CLS] inside text [SEP] and [MASK] and [UNK] and [PAD] and [cls]",
  "العربية हिन्दी ไทย ελληνικά русский",
  "   leading and trailing whitespace   ",
  "",
  "x" + "\u0301".repeat(5) + " a\u0308 o\u0308 u\u0308 — combining marks",
  "don't won't I'm you're it's. \"Double\" 'single' `back`",
  "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐛𝐨𝐥𝐝 ℌ𝔢𝔩𝔩𝔬 ①②③ ⅰⅱⅲ",
];
const tok = await Tokenizer.fromFile(path);
tok.setTruncation(100000); // effectively none: every id, as hearth's embed_tokenize(truncate=0)
tok.setPadding({ maxLength: 0 }); // replaced below when the binding has no way to disable
if (typeof tok.disablePadding === "function") tok.disablePadding();
const cases = [];
for (const t of texts) {
  const enc = await tok.encode(t);
  const ids = Array.from(enc.getIds());
  const mask = Array.from(enc.getAttentionMask());
  cases.push({ text: t, ids: ids.filter((_, i) => mask[i] === 1) });
}
const body = cases.map((c) => "  " + JSON.stringify(c)).join(",\n");
writeFileSync(out, `{"source": ${JSON.stringify("tokenizers (npm) " + path)},\n "cases": [\n${body}\n]}\n`);
console.log(`wrote ${out}: ${cases.length} texts`);
