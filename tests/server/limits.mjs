// tests/server/limits.mjs: the HTTP layer of `hearth serve` against careless and hostile clients,
// on a server with a vector store and no model (it starts at once): the API key checked before
// any route or method is told apart; errors in Chroma's shape under /api/v2 and OpenAI's
// elsewhere; bodies over --max-body answered 413 (declared or chunked, the chromadb client
// seeing the answer rather than a reset); Content-Length headers that disagree; connections per
// address; a client trickling its headers or its body cut at the deadline. Started by
// test_serve.sh with --max-body 65536 --max-conns-per-ip 20 --header-timeout 1 --body-timeout 2
// --timeout 5:
//   node limits.mjs BASE_URL API_KEY
import http from 'node:http';
import net from 'node:net';
import { ChromaClient } from 'chromadb';

const [base, key] = process.argv.slice(2);
const url = new URL(base);
const port = Number(url.port);
const PER_IP = 20, MAX_BODY = 65536;
let pass = 0, fail = 0;

function check(cond, what) {
  if (cond) pass++;
  else { fail++; console.log(`FAIL: ${what}`); }
}

async function test(name, fn) {
  const t0 = Date.now();
  try { await fn(); console.log(`ok: ${name} (${Date.now() - t0} ms)`); } catch (e) { fail++; console.log(`FAIL: ${name}: ${e.stack || e}`); }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// raw request: resolves {status, headers, body}, or {status: 'error CODE'} when the connection
// fails before an answer. chunked: the body goes out in pieces without a Content-Length.
function raw(method, path, { body, headers = {}, auth = true, chunked = false, localAddress } = {}) {
  return new Promise((resolve) => {
    const h = { ...headers };
    if (auth) h.authorization = `Bearer ${key}`;
    if (body !== undefined && !chunked) h['content-length'] = Buffer.byteLength(body);
    const req = http.request({ host: url.hostname, port, method, path, headers: h, agent: false, localAddress }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (data += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
      res.on('error', (e) => resolve({ status: `error ${e.code}` }));
    });
    req.on('error', (e) => resolve({ status: `error ${e.code}` }));
    if (body !== undefined) {
      if (chunked) for (let i = 0; i < body.length; i += 8192) req.write(body.slice(i, i + 8192));
      else req.write(body);
    }
    req.end();
  });
}

// the first line of the answer to bytes written on a bare socket ('' if closed without one)
function rawBytes(bytes) {
  return new Promise((resolve) => {
    const s = net.connect(port, url.hostname, () => s.write(bytes));
    let d = '';
    s.on('data', (x) => (d += x));
    s.on('close', () => resolve(d.split('\r\n')[0]));
    s.on('error', () => {});
  });
}

const openaiShape = (r) => { try { const e = JSON.parse(r.body).error; return typeof e.message === 'string' && typeof e.type === 'string' && 'code' in e; } catch { return false; } };
const chromaShape = (r, kind) => { try { const o = JSON.parse(r.body); return o.error === kind && typeof o.message === 'string'; } catch { return false; } };
const coll = '/api/v2/tenants/default_tenant/databases/default_database/collections';

await test('the API key is checked before the route and the method', async () => {
  let r = await raw('GET', '/v1/nothing-here', { auth: false });
  check(r.status === 401 && openaiShape(r), `unknown route without a key: 401, not 404 (${r.status})`);
  r = await raw('GET', '/v1/chat/completions', { auth: false });
  check(r.status === 401 && !r.headers.allow, `wrong method without a key: 401, not 405 (${r.status})`);
  r = await raw('DELETE', '/api/v2/no/such/route', { auth: false });
  check(r.status === 401 && chromaShape(r, 'AuthorizationError'), `/api/v2 without a key: 401 in Chroma's shape (${r.status} ${r.body})`);
  r = await raw('GET', '/api/v2/heartbeat', { auth: false, headers: { 'x-chroma-token': 'wrong' } });
  check(r.status === 401 && chromaShape(r, 'AuthorizationError'), `/api/v2 with a wrong X-Chroma-Token: 401 (${r.status})`);
  r = await raw('GET', '/api/v2/heartbeat', { auth: false, headers: { 'x-chroma-token': key } });
  check(r.status === 200, `/api/v2 with X-Chroma-Token: 200 (${r.status})`);
  r = await raw('GET', '/health', { auth: false });
  check(r.status === 200, '/health needs no key');
  r = await raw('GET', '/v1/nothing-here');
  check(r.status === 404 && openaiShape(r), `with the key, an unknown route: 404 (${r.status})`);
  r = await raw('GET', '/v1/chat/completions');
  check(r.status === 405 && r.headers.allow === 'POST' && openaiShape(r), `with the key, a wrong method: 405 with Allow (${r.status})`);
});

await test('bodies over --max-body: 413 in the route\'s shape, the client sees it', async () => {
  // big enough that the client is still writing when the server decides (a reset lost the answer)
  const big = JSON.stringify({ ids: Array.from({ length: 60000 }, (_, i) => `id${i}`), embeddings: Array.from({ length: 60000 }, () => [0.1, 0.2, 0.3]) });
  let r = await raw('POST', `${coll}/x/add`, { body: big });
  check(r.status === 413 && chromaShape(r, 'RequestTooLargeError') && /at most 65536/.test(r.body), `/api/v2, Content-Length over: 413 Chroma-shaped (${r.status} ${r.body})`);
  r = await raw('POST', `${coll}/x/add`, { body: big, chunked: true });
  check(r.status === 413 && chromaShape(r, 'RequestTooLargeError'), `/api/v2, chunked over: 413 Chroma-shaped (${r.status} ${r.body})`);
  r = await raw('POST', '/v1/completions', { body: big, chunked: true });
  check(r.status === 413 && openaiShape(r) && JSON.parse(r.body).error.code === 'request_too_large', `/v1, chunked over: 413 OpenAI-shaped (${r.status} ${r.body})`);
  r = await raw('POST', '/v1/completions', { body: big, chunked: true, auth: false });
  check(r.status === 401, `over the limit and without a key: 401 (${r.status})`);
  const line = await rawBytes(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nExpect: 100-continue\r\nContent-Length: ${big.length}\r\n\r\n`);
  check(line === 'HTTP/1.1 413 Request Entity Too Large' || line === 'HTTP/1.1 413 Content Too Large', `Expect: 100-continue over the limit: 413 instead of 100 Continue (${line})`);
  // the server is still fine, and a body at the limit's edge is read whole
  r = await raw('POST', '/tokenize', { body: JSON.stringify({ content: 'a'.repeat(MAX_BODY - 20) }), chunked: true });
  check(r.status === 404 && openaiShape(r), `a chunked body under the limit reaches its route (no model: 404) (${r.status})`);
  // the chromadb client: a bulk add over the limit is an answer, not "Failed to connect"
  const client = new ChromaClient({ host: url.hostname, port, ssl: false, headers: { 'x-chroma-token': key } });
  const c = await client.getOrCreateCollection({ name: 'limits', embeddingFunction: null });
  // ~10 MB in fewer records than pre-flight's max_batch_size, so the client sends it: the size
  // at which the client saw "Failed to connect to chromadb" (a reset) before
  const n = 5000, emb = Array.from({ length: 128 }, (_, j) => j / 7);
  try {
    await c.add({ ids: Array.from({ length: n }, (_, i) => `r${i}`), embeddings: Array.from({ length: n }, () => emb) });
    check(false, 'chromadb: an add over --max-body was accepted');
  } catch (e) {
    check(e.name !== 'ChromaConnectionError' && /at most 65536/.test(e.message), `chromadb: a bulk add over --max-body says why (${e.name}: ${e.message})`);
  }
  // more records than the body limit can carry: the client itself refuses, by pre-flight's figure
  try {
    await c.add({ ids: Array.from({ length: 20000 }, (_, i) => `r${i}`), embeddings: Array.from({ length: 20000 }, () => [1, 0, 0]) });
    check(false, 'chromadb: 20,000 records over a 64 KiB body limit were accepted');
  } catch (e) {
    check(/max batch size 8189/.test(e.message), `chromadb: a batch over pre-flight's max_batch_size is refused by the client (${e.name}: ${e.message})`);
  }
  await c.add({ ids: ['a'], embeddings: [[1, 0, 0]] });
  check((await c.count()) === 1, 'chromadb: a small add afterwards works');
});

await test('ambiguous framing: 400', async () => {
  let line = await rawBytes(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Length: 5\r\nContent-Length: 9\r\n\r\n{"a":1}xx`);
  check(line === 'HTTP/1.1 400 Bad Request', `two different Content-Length headers: 400 (${line})`);
  line = await rawBytes(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`);
  check(line === 'HTTP/1.1 400 Bad Request', `Content-Length with Transfer-Encoding: 400 (${line})`);
});

// n sockets that send a request line and then one header line every `every` ms, never ending
// the headers; resolves each socket's {accepted, closedAfter} once all are closed or maxMs passed
function trickle(n, every, maxMs, localAddress) {
  return Array.from({ length: n }, () => new Promise((resolve) => {
    const t0 = Date.now();
    let data = false, timer = null;
    const s = net.connect({ port, host: url.hostname, localAddress }, () => {
      s.write('GET /health HTTP/1.1\r\nHost: x\r\n');
      timer = setInterval(() => s.write(`X-Slow-${Date.now()}: 1\r\n`), every);
    });
    s.on('data', () => (data = true));
    s.on('error', () => {});
    s.on('close', () => { clearInterval(timer); resolve({ ms: Date.now() - t0, data }); });
    setTimeout(() => s.destroy(), maxMs);
  }));
}

await test('slowloris: one address holds at most its share; the headers deadline closes them', async () => {
  const t0 = Date.now();
  const slow = trickle(3 * PER_IP, 300, 8000);
  await sleep(400);
  // another address is served while they trickle (the whole 127/8 is loopback on Linux)
  const other = await raw('GET', '/health', { localAddress: '127.0.0.2' });
  check(other.status === 200, `another address is answered while one trickles (${other.status})`);
  const done = await Promise.all(slow);
  // refused at accept: closed at once; held: until the 1 s deadline (nothing closes them sooner)
  const refused = done.filter((d) => d.ms < 800).length;
  const held = done.filter((d) => d.ms >= 800);
  check(refused >= 2 * PER_IP && held.length <= PER_IP, `at most ${PER_IP} connections per address (${held.length} held, ${refused} refused at once)`);
  check(held.length > 0 && held.every((d) => d.ms >= 900 && d.ms < 3500 && !d.data),
    `the trickling ones closed at the 1 s headers deadline, not kept alive by their bytes (${held.map((d) => d.ms)})`);
  const again = await raw('GET', '/health');
  check(again.status === 200, `the address is served again once they are gone (${again.status}, ${Date.now() - t0} ms)`);
});

await test('a body trickling in is cut at the body deadline', async () => {
  const t0 = Date.now();
  const ms = await new Promise((resolve) => {
    let timer = null;
    const s = net.connect(port, url.hostname, () => {
      s.write(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Length: 1000\r\n\r\n`);
      timer = setInterval(() => s.write('a'), 300);
    });
    s.on('error', () => {});
    s.on('close', () => { clearInterval(timer); resolve(Date.now() - t0); });
    setTimeout(() => s.destroy(), 9000);
  });
  check(ms >= 1900 && ms < 4500, `closed at the 2 s body deadline although bytes kept coming, before the 5 s idle timeout (${ms} ms)`);
});

console.log(`limits.mjs: ${pass} passed, ${fail} failed`);
process.exit(fail ? 1 : 0);
