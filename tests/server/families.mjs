// tests/server/families.mjs: a served GGUF model of a real family (tests/fixtures/gguf-families:
// qwen2 with its ChatML template, llama with Llama 3.1's) through the official openai npm client:
// the model is listed under its file stem and may be named by its file name; a chat, streamed and
// not, answers with llama.cpp's greedy continuation of the same chat (expected.tsv: its prompt
// ids and 64 tokens, recorded by tools/gguf_parity_fixtures.sh), the prompt counted as
// llama.cpp's; no end-of-generation token is ever printed. Started by test_serve.sh:
//   node families.mjs BASE_URL FILE EXPECTED_TSV
import OpenAI from 'openai';
import fs from 'node:fs';

const [base, file, tsv] = process.argv.slice(2);
const stem = file.replace(/\.gguf$/, '');
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'none', maxRetries: 0, timeout: 60000 });
let pass = 0, fail = 0;
function check(cond, what) {
  if (cond) pass++;
  else { fail++; console.log(`FAIL: ${file}: ${what}`); }
}

const row = fs.readFileSync(tsv, 'utf8').split('\n').map((l) => l.split('\t'))
  .find((f) => f[0] === file && f[1] === 'chat');
if (!row) { console.log(`FAIL: no chat row for ${file} in ${tsv}`); process.exit(1); }
const [, , prompt, promptIds, genIds] = row;
const nPrompt = promptIds.trim().split(/\s+/).length;
const gen = genIds.trim().split(/\s+/).map(Number);

// llama.cpp's continuation as text: the server's /detokenize of the prompt and prompt + answer
async function detok(ids) {
  const r = await fetch(`${base}/detokenize`, { method: 'POST', body: JSON.stringify({ tokens: ids }) });
  return (await r.json()).content;
}
const pids = promptIds.trim().split(/\s+/).map(Number);
const before = await detok(pids), after = await detok([...pids, ...gen]);
check(after.startsWith(before), 'the detokenized prompt is a prefix of prompt + answer');
const want = after.slice(before.length);
check(want.length > 20, `llama.cpp's answer is text: ${JSON.stringify(want)}`);

// listed under the file stem; either name is accepted
const models = await client.models.list();
check(models.data.length === 1 && models.data[0].id === stem, `listed as ${stem}: ${JSON.stringify(models.data)}`);

for (const name of [stem, file]) {
  const r = await client.chat.completions.create({
    model: name, messages: [{ role: 'user', content: prompt }], temperature: 0, max_tokens: 64,
  });
  const text = r.choices[0].message.content;
  check(r.model === stem, `the answer names the model ${stem}, not ${r.model}`);
  check(r.usage.prompt_tokens === nPrompt, `prompt tokens ${r.usage.prompt_tokens}, llama.cpp's ${nPrompt}`);
  // llama.cpp's run never chose an end-of-generation token; hearth's stops at one (finish
  // "stop") or runs the 64 tokens: either way what it printed is llama.cpp's text
  const fin = r.choices[0].finish_reason;
  check(fin === 'length' ? text === want : fin === 'stop' && want.startsWith(text),
    `answer (${fin}, ${r.usage.completion_tokens} tokens) is llama.cpp's:\n  hearth:    ${JSON.stringify(text)}\n  llama.cpp: ${JSON.stringify(want)}`);
  check(!/<\|im_end\|>|<\|eot_id\|>|<\|endoftext\|>|<\/s>/.test(text), `no end-of-turn text: ${JSON.stringify(text)}`);
}

// streamed: the same text, chunk by chunk
const stream = await client.chat.completions.create({
  model: stem, messages: [{ role: 'user', content: prompt }], temperature: 0, max_tokens: 64,
  stream: true, stream_options: { include_usage: true },
});
let streamed = '', usage = null, finish = null;
for await (const c of stream) {
  if (c.choices?.[0]?.delta?.content) streamed += c.choices[0].delta.content;
  if (c.choices?.[0]?.finish_reason) finish = c.choices[0].finish_reason;
  if (c.usage) usage = c.usage;
}
check(finish === 'length' ? streamed === want : want.startsWith(streamed), `streamed answer is llama.cpp's: ${JSON.stringify(streamed)}`);
check(usage && usage.prompt_tokens === nPrompt, `streamed usage ${JSON.stringify(usage)}`);

// an unknown model name is refused by name
try {
  await client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] });
  check(false, 'model "nope" was accepted');
} catch (e) {
  check(e.status === 404 && /nope/.test(e.message), `model "nope": ${e.status} ${e.message}`);
}

console.log(`families.mjs ${file}: ${pass} passed, ${fail} failed`);
process.exit(fail ? 1 : 0);
