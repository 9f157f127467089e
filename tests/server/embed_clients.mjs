// tests/server/embed_clients.mjs: the official clients against `hearth serve --embed-model
// tests/fixtures/embed/bert_tiny.gguf --vstore-dir DIR` (tests/server/test_embed.sh).
//  - openai: embeddings.create (float and the client's default base64 give the same vectors;
//    one input or many; usage), and its errors for an empty input and one too long, by index.
//  - chromadb: a collection naming its embedding model (configuration.embedding_function
//    {name: "hearth", config: {model}}, the "hearth" embedding function registered with the
//    client, computing through /v1/embeddings); documents added without embeddings and queried
//    by text; the collection fetched again without an embedding function rebuilds it from the
//    stored configuration; records the server embedded itself (raw add with documents only)
//    found by the client's text query at distance ~0, so both sides embed alike; BM25 and hybrid
//    queries over HTTP (the "hearth" query option).
// Usage: node tests/server/embed_clients.mjs http://127.0.0.1:PORT MODEL_ID
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { ChromaClient, registerEmbeddingFunction } from 'chromadb';

const base = process.argv[2] ?? 'http://127.0.0.1:8080';
const MODEL = process.argv[3] ?? 'random-bert-tiny';
const url = new URL(base);
const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'none' });
const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
const dot = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0);
async function rejects(p, status, pattern, what) {
  try {
    await p;
  } catch (err) {
    assert.equal(err.status, status, `${what}: status`);
    assert.match(String(err?.message ?? err), pattern, what);
    return;
  }
  assert.fail(`${what}: did not throw`);
}

// ---- /v1/embeddings through the openai client
const texts = ['hello world, this is a test.', 'The quick brown fox jumps over the lazy dog.', 'a'];
const f = await openai.embeddings.create({ model: MODEL, input: texts, encoding_format: 'float' });
assert.equal(f.object, 'list');
assert.equal(f.model, MODEL);
assert.equal(f.data.length, 3);
assert.deepEqual(f.data.map((d) => d.index), [0, 1, 2]);
for (const d of f.data) {
  assert.equal(d.object, 'embedding');
  assert.equal(d.embedding.length, 64);
  assert.ok(Math.abs(norm(d.embedding) - 1) < 1e-5, 'L2-normalized');
}
assert.equal(f.usage.prompt_tokens, 10 + 12 + 3); // [CLS] ... [SEP] each
assert.equal(f.usage.total_tokens, f.usage.prompt_tokens);
const b = await openai.embeddings.create({ model: MODEL, input: texts }); // base64 by default
for (let i = 0; i < 3; i++)
  for (let j = 0; j < 64; j++)
    assert.ok(Math.abs(b.data[i].embedding[j] - f.data[i].embedding[j]) < 1e-6, 'base64 = float');
const one = await openai.embeddings.create({ model: MODEL, input: texts[1], encoding_format: 'float' });
assert.ok(dot(one.data[0].embedding, f.data[1].embedding) > 0.99999, 'alone = in a batch');
await rejects(openai.embeddings.create({ model: MODEL, input: ['ok', ''] }), 400, /input\[1\] is an empty string/, 'empty input');
await rejects(
  openai.embeddings.create({ model: MODEL, input: ['short', 'word '.repeat(100)] }),
  400, /input\[1\] has 102 tokens; this model takes at most 64/, 'too long',
);
await rejects(openai.embeddings.create({ model: 'other', input: 'x' }), 404, /does not exist/, 'unknown model');

const models = await openai.models.list();
assert.ok(models.data.some((m) => m.id === MODEL && m.meta?.kind === 'embedding' && m.meta.n_embd === 64), 'listed in /v1/models');
assert.equal((await openai.models.retrieve(MODEL)).id, MODEL);

// ---- the vector store, through the chromadb client
class HearthEmbeddingFunction {
  constructor({ model, url: u = base } = {}) {
    this.name = 'hearth';
    this.model = model;
    this.url = u;
  }
  async generate(inputs) {
    const r = await fetch(`${this.url}/v1/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: this.model, input: inputs }),
    });
    const j = await r.json();
    if (!r.ok) throw new Error(j.error?.message ?? `HTTP ${r.status}`);
    return j.data.map((d) => d.embedding);
  }
  getConfig() {
    return { model: this.model, url: this.url };
  }
  static buildFromConfig(c) {
    return new HearthEmbeddingFunction(c);
  }
  defaultSpace() {
    return 'cosine';
  }
  supportedSpaces() {
    return ['cosine', 'l2', 'ip'];
  }
}
registerEmbeddingFunction('hearth', HearthEmbeddingFunction);

const client = new ChromaClient({ host: url.hostname, port: Number(url.port), ssl: false });
const col = await client.createCollection({
  name: 'facts',
  embeddingFunction: new HearthEmbeddingFunction({ model: MODEL }),
});
const docs = [
  'Paris is the capital and largest city of France.',
  'The mitochondria is the powerhouse of the cell.',
  'Embeddings map text to vectors; similar texts get similar vectors.',
  'The quick brown fox jumps over the lazy dog.',
];
await col.add({ ids: ['paris', 'cell', 'emb', 'fox'], documents: docs, metadatas: docs.map((_, i) => ({ i })) });
assert.equal(await col.count(), 4);
// each document is its own nearest neighbour
for (let i = 0; i < docs.length; i++) {
  const r = await col.query({ queryTexts: [docs[i]], nResults: 2 });
  assert.equal(r.ids[0][0], ['paris', 'cell', 'emb', 'fox'][i], `query by the text of ${i}`);
  assert.ok(r.distances[0][0] < 1e-4, 'its own text at distance ~0');
}
// the stored configuration names the model: a client without the function gets it back
const again = await client.getCollection({ name: 'facts' });
assert.equal(again.configuration?.embeddingFunction?.name ?? again.embeddingFunction?.name, 'hearth');
const r2 = await again.query({ queryTexts: ['the capital city of france'], nResults: 1 });
assert.equal(r2.ids[0].length, 1);
await again.upsert({ ids: ['fox'], documents: ['A fox is a small wild canine.'] });
const r3 = await again.query({ queryTexts: ['A fox is a small wild canine.'], nResults: 1, include: ['documents', 'distances'] });
assert.equal(r3.ids[0][0], 'fox');
assert.equal(r3.documents[0][0], 'A fox is a small wild canine.');
assert.ok(r3.distances[0][0] < 1e-4, 'upserted document re-embedded');

// the server embeds documents sent without embeddings (a raw client), with the same model
const api = `${base}/api/v2/tenants/default_tenant/databases/default_database/collections/${col.id}`;
const post = async (path, body) => {
  const r = await fetch(`${api}/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: await r.json() };
};
let res = await post('add', { ids: ['srv'], documents: ['Server side embedding happens in hearth itself.'] });
assert.equal(res.status, 201, JSON.stringify(res.json));
const r4 = await col.query({ queryTexts: ['Server side embedding happens in hearth itself.'], nResults: 1 });
assert.equal(r4.ids[0][0], 'srv');
assert.ok(r4.distances[0][0] < 1e-4, 'server-side and client-side vectors agree');
// update with documents only re-embeds on the server
res = await post('update', { ids: ['srv'], documents: ['The lazy dog sleeps all day long.'] });
assert.equal(res.status, 200, JSON.stringify(res.json));
const r5 = await col.query({ queryTexts: ['The lazy dog sleeps all day long.'], nResults: 1 });
assert.equal(r5.ids[0][0], 'srv');
assert.ok(r5.distances[0][0] < 1e-4, 'update re-embedded');
// query_texts in the body: embedded by the server; same answer as the client's own embedding
res = await post('query', { query_texts: [docs[1]], n_results: 1, include: ['distances'] });
assert.equal(res.status, 200, JSON.stringify(res.json));
assert.equal(res.json.ids[0][0], 'cell');
// BM25 and hybrid over HTTP: scores, higher is better
res = await post('query', { query_texts: ['mitochondria cell'], n_results: 3, hearth: { mode: 'bm25' }, include: ['documents', 'distances'] });
assert.equal(res.status, 200, JSON.stringify(res.json));
assert.equal(res.json.ids[0][0], 'cell');
assert.equal(res.json.ids[0].length, 1, 'only documents with the words');
res = await post('query', { query_texts: ['mitochondria cell'], n_results: 3, hearth: { mode: 'hybrid', rrf_k: 60 }, include: ['distances'] });
assert.equal(res.status, 200, JSON.stringify(res.json));
assert.equal(res.json.ids[0][0], 'cell');
assert.equal(res.json.ids[0].length, 3);
assert.ok(res.json.distances[0][0] >= res.json.distances[0][1], 'fused scores, best first');
res = await post('query', { query_texts: ['x'], hearth: { mode: 'sparse' } });
assert.equal(res.status, 400);
assert.match(res.json.message, /hearth.mode must be dense, bm25 or hybrid/);
// a collection naming another model, and one naming none, refuse documents without vectors
const other = await client.createCollection({ name: 'other', metadata: { 'hearth:embedding_model': 'bge-large' }, embeddingFunction: null });
res = await fetch(`${base}/api/v2/tenants/default_tenant/databases/default_database/collections/${other.id}/add`, {
  method: 'POST', body: JSON.stringify({ ids: ['a'], documents: ['x'] }), headers: { 'content-type': 'application/json' },
});
assert.equal(res.status, 400);
assert.match((await res.json()).message, /'bge-large'; this server embeds with/);
const none = await client.createCollection({ name: 'none', embeddingFunction: null });
await assert.rejects(none.add({ ids: ['a'], documents: ['x'] }), /embedding function/i);
res = await fetch(`${base}/api/v2/tenants/default_tenant/databases/default_database/collections/${none.id}/add`, {
  method: 'POST', body: JSON.stringify({ ids: ['a'], documents: ['x'] }), headers: { 'content-type': 'application/json' },
});
assert.equal(res.status, 400);
assert.match((await res.json()).message, /names no embedding model/);
console.log('embed clients: ok');
