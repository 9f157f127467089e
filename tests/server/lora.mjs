// tests/server/lora.mjs: `hearth serve --model BASE --lora romeo=A --lora cat=B` through the
// official openai npm client: /v1/models lists the base and each adapter (parent: the base); a
// request's model picks the adapter (romeo's greedy text is llama.cpp's with --lora, recorded in
// tests/fixtures/finetune/greedy.tsv); requests for the base and both adapters sent at once —
// decoded in one batch, streamed and not — each get the text they get alone; an unknown model is
// a 404 naming what is served. Started by test_serve_lora.sh:
//   node lora.mjs BASE_URL BASE_ID ROMEO_WANT
import OpenAI from 'openai';

const [base, baseId, romeoWant] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'none', maxRetries: 0, timeout: 60000 });
let pass = 0, fail = 0;
function check(cond, what) {
  if (cond) pass++;
  else { fail++; console.log(`FAIL: ${what}`); }
}

const models = await client.models.list();
const ids = models.data.map((m) => m.id);
check(JSON.stringify(ids) === JSON.stringify([baseId, 'romeo', 'cat']), `listed: ${JSON.stringify(ids)}`);
for (const m of models.data.slice(1))
  check(m.parent === baseId && m.meta && m.meta.kind === 'lora' && m.meta.rank > 0,
    `adapter entry: ${JSON.stringify(m)}`);
const one = await client.models.retrieve('romeo');
check(one.id === 'romeo' && one.parent === baseId, `retrieve romeo: ${JSON.stringify(one)}`);

const prompt = 'Once upon a time';
async function complete(model, stream) {
  const req = { model, prompt, temperature: 0, max_tokens: 40 };
  if (!stream) {
    const r = await client.completions.create(req);
    check(r.model === model, `the answer names ${model}, not ${r.model}`);
    return r.choices[0].text;
  }
  let text = '';
  for await (const c of await client.completions.create({ ...req, stream: true })) {
    check(c.model === model, `a chunk names ${model}, not ${c.model}`);
    text += c.choices[0]?.text ?? '';
  }
  return text;
}

const names = [baseId, 'romeo', 'cat'];
const alone = {};
for (const n of names) alone[n] = await complete(n, false);
check(alone.romeo === romeoWant, `romeo is llama.cpp's --lora text:\n  hearth:    ${JSON.stringify(alone.romeo)}\n  llama.cpp: ${JSON.stringify(romeoWant)}`);
check(alone[baseId] !== alone.romeo && alone[baseId] !== alone.cat && alone.romeo !== alone.cat,
  `three different texts: ${JSON.stringify(alone)}`);

// all at once: two of each, one streamed and one not, in a batch of mixed adapters
const jobs = [];
for (const n of names) for (const stream of [false, true]) jobs.push({ n, stream, p: complete(n, stream) });
for (const j of jobs) {
  const t = await j.p;
  check(t === alone[j.n], `${j.n}${j.stream ? ' (streamed)' : ''} in a mixed batch: ${JSON.stringify(t)} != alone ${JSON.stringify(alone[j.n])}`);
}

// chat completions pick the adapter too
const chat = await client.chat.completions.create({ model: 'cat', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 });
check(chat.model === 'cat' && chat.choices.length === 1, `chat with the adapter: ${JSON.stringify(chat)}`);

try {
  await client.completions.create({ model: 'juliet', prompt, max_tokens: 2 });
  check(false, 'an unknown model was served');
} catch (e) {
  check(e.status === 404 && e.code === 'model_not_found' && /juliet/.test(e.message) &&
    /romeo/.test(e.message) && /cat/.test(e.message), `unknown model: ${e.status} ${e.code} ${e.message}`);
}
try {
  await client.models.retrieve('juliet');
  check(false, 'an unknown model was retrieved');
} catch (e) {
  check(e.status === 404, `retrieve unknown: ${e.status}`);
}

console.log(`lora.mjs: ${pass} passed, ${fail} failed`);
process.exit(fail ? 1 : 0);
