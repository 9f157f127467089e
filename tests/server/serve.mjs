// tests/server/serve.mjs: drives a running `hearth serve` with the official openai npm client
// (chat and completions, streaming and not, seed determinism, stop, max_tokens, usage, the error
// classes) and with raw HTTP from node's http/net (malformed JSON, oversized bodies, wrong
// routes and methods, a stalled client, a disconnect mid-stream freeing its slot, a full queue,
// many connections at once, /metrics, /health, /tokenize). Started by test_serve.sh:
//   node serve.mjs BASE_URL API_KEY MODEL_ID TIMEOUT_S MAX_BODY
import OpenAI from 'openai';
import http from 'node:http';
import net from 'node:net';

const [base, key, modelId, timeoutS, maxBody] = process.argv.slice(2);
const url = new URL(base);
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0, timeout: 30000 });
let pass = 0, fail = 0;
const failures = [];

function check(cond, what) {
  if (cond) pass++;
  else { fail++; failures.push(what); console.log(`FAIL: ${what}`); }
}

async function test(name, fn) {
  const t0 = Date.now();
  try { await fn(); console.log(`ok: ${name} (${Date.now() - t0} ms)`); } catch (e) { fail++; failures.push(`${name}: ${e.stack || e}`); console.log(`FAIL: ${name}: ${e.stack || e}`); }
}

// raw request: resolves {status, headers, body}
function raw(method, path, { body, headers = {}, auth = true } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (auth) h.authorization = `Bearer ${key}`;
    if (body !== undefined && h['content-length'] === undefined) h['content-length'] = Buffer.byteLength(body);
    const req = http.request({ host: url.hostname, port: url.port, method, path, headers: h, agent: false }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (data += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

function isOpenAIError(body) {
  try {
    const e = JSON.parse(body).error;
    return e && typeof e.message === 'string' && typeof e.type === 'string' && 'param' in e && 'code' in e;
  } catch { return false; }
}

async function metrics() {
  const r = await raw('GET', '/metrics');
  const get = (name) => {
    const m = r.body.match(new RegExp(`^${name} (\\S+)$`, 'm'));
    return m ? Number(m[1]) : NaN;
  };
  return { text: r.body, get };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitIdle(ms = 5000) {
  const t0 = Date.now();
  for (;;) {
    const m = await metrics();
    if (m.get('hearth_slots_busy') === 0 && m.get('hearth_queue_depth') === 0) return Date.now() - t0;
    if (Date.now() - t0 > ms) return -1;
    await sleep(20);
  }
}

const chatMsgs = [{ role: 'system', content: 'You answer briefly.' }, { role: 'user', content: 'to be or not' }];

await test('models', async () => {
  const list = await client.models.list();
  check(list.data.length === 1 && list.data[0].id === modelId, `models.list gives [${modelId}]`);
  const m = await client.models.retrieve(modelId);
  check(m.id === modelId && m.object === 'model', 'models.retrieve');
});

let greedy = '';
await test('chat, non-streaming', async () => {
  const r = await client.chat.completions.create({ model: modelId, messages: chatMsgs, max_tokens: 12, seed: 7 });
  check(r.object === 'chat.completion' && r.id.startsWith('chatcmpl-'), 'chat object and id');
  const c = r.choices[0];
  check(c.message.role === 'assistant' && typeof c.message.content === 'string', 'assistant message');
  check(['stop', 'length'].includes(c.finish_reason), `finish_reason ${c.finish_reason}`);
  check(r.usage.prompt_tokens > 0 && r.usage.completion_tokens <= 12 &&
        r.usage.total_tokens === r.usage.prompt_tokens + r.usage.completion_tokens, 'chat usage adds up');
  // streaming with the same seed gives the same text, in OpenAI's chunk shapes
  const s = await client.chat.completions.create({ model: modelId, messages: chatMsgs, max_tokens: 12, seed: 7,
    stream: true, stream_options: { include_usage: true } });
  const chunks = [];
  for await (const ch of s) chunks.push(ch);
  const first = chunks[0], last = chunks[chunks.length - 1], fin = chunks[chunks.length - 2];
  check(first.object === 'chat.completion.chunk' && first.choices[0].delta.role === 'assistant', 'first chunk carries the role');
  const text = chunks.filter((c) => c.choices.length).map((c) => c.choices[0].delta.content || '').join('');
  check(text === c.message.content, `stream text equals non-stream text: ${JSON.stringify(text)} vs ${JSON.stringify(c.message.content)}`);
  check(fin.choices[0].finish_reason === c.finish_reason, 'stream finish_reason');
  check(last.choices.length === 0 && last.usage && last.usage.total_tokens === r.usage.total_tokens, 'include_usage: last chunk has usage and no choices');
  check(chunks.slice(0, -1).every((c) => c.usage === null), 'other chunks have usage null');
});

await test('completions: seed, max_tokens, stop', async () => {
  const a = await client.completions.create({ model: modelId, prompt: 'to be or', max_tokens: 8, seed: 42, temperature: 1 });
  const b = await client.completions.create({ model: modelId, prompt: 'to be or', max_tokens: 8, seed: 42, temperature: 1 });
  check(a.object === 'text_completion' && a.id.startsWith('cmpl-'), 'completion object');
  check(a.choices[0].text === b.choices[0].text, 'same seed, same text');
  check(a.choices[0].finish_reason === 'length' && a.usage.completion_tokens === 8, 'max_tokens 8: 8 tokens, finish_reason length');
  const texts = new Set();
  for (const seed of [1, 2, 3, 4]) {
    const r = await client.completions.create({ model: modelId, prompt: 'to be or', max_tokens: 8, seed, temperature: 1.5 });
    texts.add(r.choices[0].text);
  }
  check(texts.size > 1, 'different seeds give different texts');
  const g = await client.completions.create({ model: modelId, prompt: 'to be or', max_tokens: 24, temperature: 0 });
  greedy = g.choices[0].text;
  // stop: cut the greedy text at a piece of itself
  const ascii = [...greedy].findIndex((ch, i) => i >= 3 && /[a-z]/.test(ch));
  if (ascii > 0) {
    const stop = greedy.slice(ascii, ascii + 1);
    const cut = greedy.slice(0, greedy.indexOf(stop));
    const r = await client.completions.create({ model: modelId, prompt: 'to be or', max_tokens: 24, temperature: 0, stop: [stop, 'QQQQ'] });
    check(r.choices[0].text === cut && r.choices[0].finish_reason === 'stop',
      `stop ${JSON.stringify(stop)}: ${JSON.stringify(r.choices[0].text)} vs ${JSON.stringify(cut)}`);
  } else {
    check(false, `greedy text has no letter to stop at: ${JSON.stringify(greedy)}`);
  }
  // the prompt as token ids (from /tokenize) gives the same greedy text as the string
  const tk = JSON.parse((await raw('POST', '/tokenize', { body: '{"content":"to be or"}' })).body).tokens;
  const byIds = await client.completions.create({ model: modelId, prompt: tk, max_tokens: 24, temperature: 0 });
  check(byIds.choices[0].text === greedy, `prompt as token ids: ${JSON.stringify(byIds.choices[0].text)}`);
  // llama.cpp-style extensions reach the sampler: a strong repetition penalty changes greedy text
  const pen = await client.completions.create({ model: modelId, prompt: 'to be or', max_tokens: 24, temperature: 0, repetition_penalty: 5, repeat_last_n: -1 });
  check(pen.choices[0].text !== greedy, 'repetition_penalty changes the greedy text');
  const s = await client.completions.create({ model: modelId, prompt: 'to be or', max_tokens: 24, temperature: 0, stream: true });
  let text = '', finish = null, obj = true;
  for await (const ch of s) {
    obj &&= ch.object === 'text_completion';
    text += ch.choices[0].text;
    finish = ch.choices[0].finish_reason || finish;
  }
  check(obj && text === greedy && finish === 'length', 'streamed completion equals the greedy text');
});

await test('errors through the client', async () => {
  const bad = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'wrong', maxRetries: 0 });
  try { await bad.models.list(); check(false, 'wrong key accepted'); } catch (e) { check(e instanceof OpenAI.AuthenticationError && e.status === 401, `wrong key: 401 AuthenticationError (${e})`); }
  try { await client.chat.completions.create({ model: 'gpt-4o', messages: chatMsgs }); check(false, 'unknown model accepted'); } catch (e) { check(e instanceof OpenAI.NotFoundError && e.code === 'model_not_found', `unknown model: 404 (${e})`); }
  try {
    await client.completions.create({ model: modelId, prompt: 'to be or not to be '.repeat(40), max_tokens: 4 });
    check(false, 'overlong prompt accepted');
  } catch (e) {
    check(e instanceof OpenAI.BadRequestError && /maximum context length is \d+ tokens/.test(e.message) && /\d+ in the prompt|prompt is (at least )?\d+ tokens/.test(e.message),
      `context overflow: 400 stating both counts (${e.message})`);
  }
  // a prompt far over the context is refused by its size alone, before it is tokenized
  const huge = 'to be or not to be '.repeat(3000);
  try {
    await client.chat.completions.create({ model: modelId, messages: [{ role: 'user', content: huge }] });
    check(false, 'huge prompt accepted');
  } catch (e) {
    check(e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded' && e.param === 'messages' &&
          /prompt is at least \d+ tokens \(57000 bytes of text/.test(e.message), `huge prompt: 400 by the size bound (${e.message})`);
  }
  try { await client.completions.create({ model: modelId, prompt: 'x', temperature: 'hot' }); check(false, 'string temperature accepted'); } catch (e) { check(e instanceof OpenAI.BadRequestError && e.param === 'temperature', `wrong type: 400 naming temperature (${e})`); }
  try { await client.chat.completions.create({ model: modelId, messages: [{ role: 'wizard', content: 'x' }] }); check(false, 'bad role accepted'); } catch (e) { check(e instanceof OpenAI.BadRequestError && /messages\[0\]\.role/.test(e.message), `bad role: 400 (${e})`); }
  try { await client.chat.completions.create({ model: modelId, messages: chatMsgs, n: 2 }); check(false, 'n=2 accepted'); } catch (e) { check(e instanceof OpenAI.BadRequestError, `n=2: 400 (${e})`); }
  try { await client.chat.completions.create({ model: modelId, messages: chatMsgs, response_format: { type: 'json_object' } }); check(false, 'json_object accepted'); } catch (e) { check(e instanceof OpenAI.BadRequestError && e.param === 'response_format', `response_format json_object: 400 naming it (${e})`); }
  const txt = await client.chat.completions.create({ model: modelId, messages: chatMsgs, max_tokens: 2, response_format: { type: 'text' } });
  check(txt.choices.length === 1, 'response_format text (the default) accepted');
});

await test('raw HTTP: malformed input, routes, limits', async () => {
  let r = await raw('POST', '/v1/chat/completions', { body: '{"messages": [', headers: { 'content-type': 'application/json' } });
  check(r.status === 400 && isOpenAIError(r.body) && JSON.parse(r.body).error.code === 'invalid_json' && /line 1/.test(r.body), `malformed JSON: 400 (${r.status} ${r.body})`);
  r = await raw('POST', '/v1/completions', { body: '[1,2]' });
  check(r.status === 400 && isOpenAIError(r.body), 'a JSON array body: 400');
  r = await raw('POST', '/v1/completions', { body: '{"prompt":"a","max_tokens":-3}' });
  check(r.status === 400 && JSON.parse(r.body).error.param === 'max_tokens', 'negative max_tokens: 400');
  r = await raw('POST', '/v1/completions', { body: '{"prompt":"a","stop":[1]}' });
  check(r.status === 400 && JSON.parse(r.body).error.param === 'stop', 'non-string stop: 400');
  r = await raw('POST', '/v1/completions', { body: '{"prompt":"a","prompt":"b"}' });
  check(r.status === 400, 'duplicate keys: 400');
  r = await raw('POST', '/v1/completions', { body: `{"prompt":"${'a'.repeat(Number(maxBody))}"}` });
  check(r.status === 413 && isOpenAIError(r.body), `body over the limit: 413 (${r.status})`);
  r = await raw('GET', '/v1/nothing-here');
  check(r.status === 404 && isOpenAIError(r.body), 'unknown route: 404');
  r = await raw('GET', '/v1/chat/completions');
  check(r.status === 405 && r.headers.allow === 'POST' && isOpenAIError(r.body), 'wrong method: 405 with Allow');
  r = await raw('GET', '/v1/models', { auth: false });
  check(r.status === 401 && isOpenAIError(r.body), 'no API key: 401');
  r = await raw('GET', '/health', { auth: false });
  check(r.status === 200 && JSON.parse(r.body).status === 'ok', '/health 200 without a key');
  r = await raw('GET', '/x', { headers: { 'x-huge': 'h'.repeat(100000) } }).catch((e) => ({ status: 'closed' }));
  check(r.status === 431 || r.status === 413 || r.status === 'closed', `oversized headers refused (${r.status})`);
  r = await raw('POST', '/tokenize', { body: '{"content":"to be","with_pieces":true}' });
  const toks = JSON.parse(r.body).tokens;
  check(r.status === 200 && toks.map((t) => t.piece).join('') === 'to be', '/tokenize with pieces');
  r = await raw('POST', '/detokenize', { body: JSON.stringify({ tokens: toks.map((t) => t.id) }) });
  check(r.status === 200 && JSON.parse(r.body).content === 'to be', '/detokenize round trip');
  r = await raw('POST', '/detokenize', { body: '{"tokens":[99999999]}' });
  check(r.status === 400 && isOpenAIError(r.body), '/detokenize of an unknown id: 400');
});

await test('a stalled client is cut off; others are served meanwhile', async () => {
  const t0 = Date.now();
  const closed = new Promise((resolve) => {
    const s = net.connect(Number(url.port), url.hostname, () => s.write(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Length: 100\r\n\r\n{"pro`));
    s.on('close', () => resolve(Date.now() - t0));
    s.on('error', () => {});
  });
  const r = await raw('GET', '/health');
  check(r.status === 200, 'served while another client stalls');
  const ms = await closed;
  check(ms >= Number(timeoutS) * 1000 - 500 && ms < Number(timeoutS) * 1000 + 3000, `stalled connection closed after the timeout (${ms} ms)`);
});

await test('a disconnect mid-stream frees the slot at once', async () => {
  const body = JSON.stringify({ model: modelId, prompt: 'to be', max_tokens: 100, stream: true, temperature: 1 });
  // requests finished so far: the tiny model can finish all 100 tokens before /metrics answers,
  // and then no slot is busy to see (the e2e histogram counts the request at its end)
  const done0 = (await metrics()).get('hearth_e2e_request_latency_seconds_count');
  const got = await new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method: 'POST', path: '/v1/completions', agent: false,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.once('data', async (d) => {
        const m = await metrics();
        req.destroy(); // the client goes away mid-stream
        resolve({ status: res.statusCode, first: String(d), busy: m.get('hearth_slots_busy'),
          finished: m.get('hearth_e2e_request_latency_seconds_count') > done0 });
      });
    });
    req.on('error', () => {});
    req.end(body);
  });
  check(got.status === 200 && got.first.startsWith('data: '), 'stream started');
  if (got.finished) console.log('  (the 100 tokens were done before /metrics answered: no busy slot to see)');
  else check(got.busy === 1, `one busy slot while streaming (${got.busy})`);
  const ms = await waitIdle(3000);
  check(ms >= 0 && ms < 1000, `slot freed after the disconnect (${ms} ms)`);
  const m = await metrics();
  check(m.get('hearth_slots_busy') === 0, 'busy slots back to 0');
});

await test('a full queue answers 429 with Retry-After; many connections at once', async () => {
  const body = JSON.stringify({ model: modelId, prompt: 'to be', max_tokens: 60, stream: true });
  const reqs = [];
  const results = await Promise.all(Array.from({ length: 12 }, () => new Promise((resolve) => {
    const req = http.request({ host: url.hostname, port: url.port, method: 'POST', path: '/v1/completions', agent: false,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let data = '';
      if (res.statusCode === 200) { resolve({ status: 200 }); return; } // queued ones stream later
      res.on('data', (d) => (data += d));
      res.on('end', () => resolve({ status: res.statusCode, retry: res.headers['retry-after'], body: data }));
    });
    reqs.push(req);
    req.on('error', (e) => resolve({ status: String(e) }));
    req.end(body);
  })));
  const full = results.filter((r) => r.status === 429), ok = results.filter((r) => r.status === 200);
  check(full.length > 0 && full.every((r) => r.retry && isOpenAIError(r.body)), `429s with Retry-After (${results.map((r) => r.status)})`);
  check(ok.length >= 2, `the slots and queue were served (${ok.length} streams)`);
  for (const r of reqs) r.destroy();
  check((await waitIdle(3000)) >= 0, 'every cancelled stream left its slot or queue place');
  // many connections at once, each served
  const many = await Promise.all(Array.from({ length: 150 }, () => raw('GET', '/health').catch((e) => ({ status: String(e) }))));
  check(many.every((r) => r.status === 200), `150 simultaneous connections served (${many.filter((r) => r.status !== 200).length} not)`);
});

await test('metrics', async () => {
  const m = await metrics();
  for (const h of ['hearth_time_to_first_token_seconds', 'hearth_inter_token_latency_seconds', 'hearth_e2e_request_latency_seconds', 'hearth_queue_wait_seconds']) {
    check(m.text.includes(`# TYPE ${h} histogram`) && m.text.includes(`${h}_bucket{le="+Inf"}`) && m.get(`${h}_count`) > 0, `${h} histogram observed`);
  }
  check(m.get('hearth_prompt_tokens_total') > 0 && m.get('hearth_generation_tokens_total') > 0, 'token counters');
  check(m.get('hearth_requests_total{code="200"}') > 0 && m.get('hearth_requests_total{code="400"}') > 0 &&
        m.get('hearth_requests_total{code="429"}') > 0, 'requests by status code');
  check(m.get('hearth_slots_busy') === 0 && m.get('hearth_queue_depth') === 0, 'gauges back to 0');
});

console.log(`serve.mjs: ${pass} passed, ${fail} failed`);
process.exit(fail ? 1 : 0);
