// tests/vstore/chroma_client.mjs: the chromadb npm client (the project's node_modules) against
// `hearth serve --vstore-dir DIR`: collections (create, get, get-or-create, list, count, modify,
// delete) and records (add, get, query with where / where_document / include, update, upsert,
// delete, count), explicit embeddings and no embedding function, plus the errors the client
// must surface. Usage: node tests/vstore/chroma_client.mjs http://127.0.0.1:PORT
import assert from 'node:assert/strict';
import { ChromaClient } from 'chromadb';

const url = new URL(process.argv[2] ?? 'http://127.0.0.1:8000');
const client = new ChromaClient({ host: url.hostname, port: Number(url.port), ssl: false });

const near = (a, b, eps = 1e-5) => assert.ok(Math.abs(a - b) <= eps, `${a} != ${b}`);
async function rejects(p, pattern, what) {
  try {
    await p;
  } catch (err) {
    assert.match(String(err?.message ?? err), pattern, what);
    return;
  }
  assert.fail(`${what}: did not throw`);
}

assert.ok((await client.heartbeat()) > 0, 'heartbeat');

const col = await client.createCollection({
  name: 'books',
  metadata: { owner: 'test' },
  configuration: { hnsw: { space: 'cosine' } },
  embeddingFunction: null,
});
assert.equal(col.name, 'books');
await rejects(
  client.createCollection({ name: 'books', embeddingFunction: null }),
  /exist/i,
  'duplicate collection',
);
const again = await client.getOrCreateCollection({ name: 'books', embeddingFunction: null });
assert.equal(again.id, col.id);

// records
const N = 60, D = 8;
const vec = (i) => Array.from({ length: D }, (_, j) => Math.sin(i * 1.7 + j * 0.3) + (j === i % D ? 1 : 0));
const ids = Array.from({ length: N }, (_, i) => `b${i}`);
await col.add({
  ids,
  embeddings: ids.map((_, i) => vec(i)),
  documents: ids.map((_, i) => `book ${i} about ${i % 3 === 0 ? 'whales' : 'ships'}`),
  metadatas: ids.map((_, i) => ({ year: 1900 + i, genre: i % 2 ? 'sea' : 'war', rare: i % 10 === 0 })),
});
assert.equal(await col.count(), N);

const got = await col.get({ ids: ['b3', 'b4'], include: ['documents', 'metadatas', 'embeddings'] });
assert.deepEqual([...got.ids].sort(), ['b3', 'b4']);
const i3 = got.ids.indexOf('b3');
assert.equal(got.documents[i3], 'book 3 about whales');
assert.deepEqual(got.metadatas[i3], { year: 1903, genre: 'sea', rare: false });
got.embeddings[i3].forEach((x, j) => near(x, vec(3)[j]));

const filtered = await col.get({ where: { $and: [{ year: { $gte: 1950 } }, { genre: 'war' }] } });
assert.equal(filtered.ids.length, 5); // 1950..1959, even
const wd = await col.get({ whereDocument: { $contains: 'whales' }, limit: 100 });
assert.equal(wd.ids.length, 20);
const page = await col.get({ where: { rare: true }, limit: 2, offset: 1 });
assert.deepEqual(page.ids, ['b10', 'b20']);

const q = await col.query({ queryEmbeddings: [vec(7), vec(42)], nResults: 3 });
assert.equal(q.ids.length, 2);
assert.equal(q.ids[0][0], 'b7');
assert.equal(q.ids[1][0], 'b42');
near(q.distances[0][0], 0, 1e-5); // cosine distance to itself
assert.equal(q.documents[0][0], 'book 7 about ships');
const qf = await col.query({
  queryEmbeddings: [vec(7)],
  nResults: 5,
  where: { genre: { $in: ['war'] } },
  whereDocument: { $not_contains: 'whales' },
  include: ['metadatas', 'distances'],
});
assert.equal(qf.ids[0].length, 5);
for (const m of qf.metadatas[0]) assert.equal(m.genre, 'war');

// update (metadata merge), upsert (one new, one moved), delete
await col.update({ ids: ['b1'], embeddings: [vec(1)], metadatas: [{ genre: 'poetry' }] });
const u = await col.get({ ids: ['b1'] });
assert.deepEqual(u.metadatas[0], { year: 1901, genre: 'poetry', rare: false });
await col.upsert({ ids: ['b2', 'new'], embeddings: [vec(100), vec(101)], documents: ['moved', 'fresh'] });
assert.equal(await col.count(), N + 1);
const q2 = await col.query({ queryEmbeddings: [vec(100)], nResults: 1 });
assert.equal(q2.ids[0][0], 'b2');
await col.delete({ ids: ['b0', 'b5'] });
await col.delete({ where: { genre: 'poetry' } });
assert.equal(await col.count(), N + 1 - 3);

// errors the client must surface
await rejects(col.add({ ids: ['x'], embeddings: [[1, 2, 3]] }), /dimension/i, 'wrong dimension');
await rejects(col.add({ ids: ['b3'], embeddings: [vec(3)] }), /exist/i, 'existing id');
await rejects(col.get({ where: { year: { $foo: 1 } } }), /.+/, 'malformed where');
// the client reads the error's message from Chroma's shape, {"error": kind, "message": text}
await rejects(col.add({ ids: ['x'], embeddings: [[1, 2, 3]] }), /does not match collection 'books' \(dimension 8\)/, 'the message');
// max_batch_size: the records a body within the server's limit (1 MiB by default) can carry;
// the client refuses a larger batch itself
assert.equal(await client.getMaxBatchSize(), 50000);
await rejects(
  col.add({ ids: Array.from({ length: 50001 }, (_, i) => `big${i}`), embeddings: Array.from({ length: 50001 }, () => [0]) }),
  /exceeds max batch size 50000/,
  'a batch above max_batch_size',
);
assert.equal(await col.count(), N + 1 - 3);

// collections: list, count, modify, get, delete
const other = await client.createCollection({ name: 'other', embeddingFunction: null });
const names = (await client.listCollections()).map((c) => c.name).sort();
assert.deepEqual(names, ['books', 'other']);
assert.equal(await client.countCollections(), 2);
await other.modify({ name: 'other2', metadata: { v: 2 } });
const o2 = await client.getCollection({ name: 'other2' });
assert.equal(o2.id, other.id);
assert.deepEqual(o2.metadata, { v: 2 });
await client.deleteCollection({ name: 'other2' });
await rejects(client.getCollection({ name: 'other2' }), /not be found|not found|does not exist/i, 'deleted');
assert.equal(await client.countCollections(), 1);

console.log('chroma_client.mjs: chromadb client ok');
