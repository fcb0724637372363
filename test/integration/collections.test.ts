import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorOf, startTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ maxInputs: 8, maxInputChars: 2000, bodyLimitBytes: 256 * 1024, queueSize: 64 });
});
afterAll(async () => t.close());

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';
const call = (method: Method, url: string, payload?: unknown) => t.app.inject({ method, url, ...(payload !== undefined && { payload: payload as object }) });

/** Everything the API can change: collections with their counters, and every stored row. */
function snapshot(): string {
  const collections = t.store.listCollections();
  const rows = collections.map((c) => [...t.store.iterateDocuments(c.id)].map((d) => ({ ...d, binaryCode: d.binaryCode.toString('hex'), int8Code: d.int8Code.toString('hex') })));
  return JSON.stringify({ collections, rows, indexes: collections.map((c) => t.search.getCollection(c.name).index) });
}

/** Asserts the response is the error `code` with `status`, and that nothing changed. */
async function refused(status: number, code: string, request: () => Promise<{ statusCode: number; json(): unknown }>) {
  const before = snapshot();
  const res = await request();
  expect(res.statusCode, JSON.stringify(res.json())).toBe(status);
  expect(errorOf(res).code).toBe(code);
  expect(snapshot()).toBe(before);
  return errorOf(res);
}

const docs = (n: number, prefix = 'd') => Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i}`, text: `passage ${prefix}${i} about topic ${i % 3}`, metadata: { topic: i % 3, tag: `t${i % 2}` } }));

describe('collections', () => {
  it('creates a collection bound to the served model, lists, describes and deletes it', async () => {
    const made = await call('POST', '/collections', { name: 'alpha' });
    expect(made.statusCode).toBe(201);
    expect(made.json()).toMatchObject({ name: 'alpha', fingerprint: t.encoder.fingerprint, dimension: t.encoder.dimension, documents: 0, disk_bytes: 0 });
    expect((await call('GET', '/collections')).json()).toMatchObject({ collections: [{ name: 'alpha' }] });
    expect((await call('PUT', '/collections/alpha/documents', { documents: docs(5) })).statusCode).toBe(200);
    const got = (await call('GET', '/collections/alpha')).json() as { documents: number; disk_bytes: number; memory_bytes: number; index: { documents: number } };
    expect(got.documents).toBe(5);
    expect(got.index.documents).toBe(5);
    // 5 × (4-byte binary + 32-byte int8 + 64-char hash) plus ids, texts, metadata.
    expect(got.disk_bytes).toBeGreaterThan(5 * (4 + 32 + 64));
    expect(got.memory_bytes).toBeGreaterThan(0);
    const metrics = (await call('GET', '/metrics')).body;
    expect(metrics).toContain('qembed_index_documents{collection="alpha"} 5');
    expect(metrics).toContain(`qembed_index_memory_bytes{collection="alpha"} ${got.memory_bytes}`);
    const del = await call('DELETE', '/collections/alpha');
    expect(del.json()).toEqual({ name: 'alpha', deleted_documents: 5 });
    expect((await call('GET', '/collections/alpha')).statusCode).toBe(404);
    expect(t.db.prepare('SELECT count(*) AS n FROM documents').get()).toEqual({ n: 0 });
  });

  it('refuses a duplicate name (409) and bad names (400), changing nothing', async () => {
    await call('POST', '/collections', { name: 'dup' });
    await refused(409, 'QEMBED_COLLECTION_EXISTS', () => call('POST', '/collections', { name: 'dup' }));
    for (const name of ['', 'has space', 'x'.repeat(65), 'slash/name', 'ünïcode']) {
      await refused(400, 'QEMBED_INVALID_COLLECTION_NAME', () => call('POST', '/collections', { name }));
    }
    await refused(400, 'QEMBED_INVALID_COLLECTION_NAME', () => call('POST', '/collections', { name: 7 }));
    await refused(400, 'QEMBED_INVALID_REQUEST', () => call('POST', '/collections', {}));
    await refused(400, 'QEMBED_INVALID_REQUEST', () => call('POST', '/collections', { name: 'ok', extra: 1 }));
    await refused(400, 'QEMBED_INVALID_COLLECTION_NAME', () => call('GET', '/collections/bad%20name'));
  });

  it('answers 404 for an unknown collection on every route, changing nothing', async () => {
    await refused(404, 'QEMBED_COLLECTION_NOT_FOUND', () => call('GET', '/collections/nope'));
    await refused(404, 'QEMBED_COLLECTION_NOT_FOUND', () => call('DELETE', '/collections/nope'));
    await refused(404, 'QEMBED_COLLECTION_NOT_FOUND', () => call('PUT', '/collections/nope/documents', { documents: docs(1) }));
    await refused(404, 'QEMBED_COLLECTION_NOT_FOUND', () => call('GET', '/collections/nope/documents/d0'));
    await refused(404, 'QEMBED_COLLECTION_NOT_FOUND', () => call('DELETE', '/collections/nope/documents/d0'));
    await refused(404, 'QEMBED_COLLECTION_NOT_FOUND', () => call('POST', '/collections/nope/documents/delete', { ids: ['d0'] }));
    await refused(404, 'QEMBED_COLLECTION_NOT_FOUND', () => call('POST', '/search', { collection: 'nope', query: 'x' }));
  });
});

describe('documents', () => {
  beforeAll(async () => {
    await call('POST', '/collections', { name: 'docs' });
  });

  it('upserts a batch, gets, replaces atomically in place, skips unchanged texts, and deletes', async () => {
    const first = await call('PUT', '/collections/docs/documents', { documents: docs(6) });
    expect(first.json()).toMatchObject({ upserted: 6, metadata_updated: 0, unchanged: 0 });
    expect((await call('GET', '/collections/docs/documents/d2')).json()).toMatchObject({ id: 'd2', text: 'passage d2 about topic 2', metadata: { topic: 2, tag: 't0' } });

    const rowid = (id: string) => (t.db.prepare('SELECT rowid FROM documents WHERE doc_id = ?').get(id) as { rowid: number }).rowid;
    const before = rowid('d2');
    const again = await call('PUT', '/collections/docs/documents', {
      documents: [
        { id: 'd2', text: 'a new text for d2' },
        { id: 'd3', text: 'passage d3 about topic 0', metadata: { topic: 'changed' } },
        { id: 'd4', text: 'passage d4 about topic 1', metadata: { topic: 1, tag: 't0' } },
      ],
    });
    expect(again.json()).toMatchObject({ upserted: 1, metadata_updated: 1, unchanged: 1 });
    expect(rowid('d2')).toBe(before);
    expect((await call('GET', '/collections/docs/documents/d2')).json()).toMatchObject({ text: 'a new text for d2', metadata: {} });
    expect((await call('GET', '/collections/docs/documents/d3')).json()).toMatchObject({ metadata: { topic: 'changed' } });

    expect((await call('DELETE', '/collections/docs/documents/d5')).json()).toEqual({ id: 'd5', deleted: true });
    expect((await call('POST', '/collections/docs/documents/delete', { ids: ['d0', 'd1', 'missing'] })).json()).toEqual({ deleted: 2, not_found: ['missing'] });
    expect((await call('GET', '/collections/docs')).json()).toMatchObject({ documents: 3, index: { documents: 3 } });
    expect((await t.search.check('docs', { reencode: true })).problems).toEqual([]);
  });

  it('takes any id in the URL when encoded', async () => {
    const id = 'a/b?c d#é';
    await call('PUT', '/collections/docs/documents', { documents: [{ id, text: 'odd id' }] });
    expect((await call('GET', `/collections/docs/documents/${encodeURIComponent(id)}`)).json()).toMatchObject({ id, text: 'odd id' });
    expect((await call('DELETE', `/collections/docs/documents/${encodeURIComponent(id)}`)).statusCode).toBe(200);
  });

  it('refuses bad batches whole, with a stable code, changing nothing', async () => {
    const put = (documents: unknown, extra: object = {}) => () => call('PUT', '/collections/docs/documents', { documents, ...extra });
    const good = { id: 'new-doc', text: 'would be written if the batch were accepted' };
    for (const metadata of [[1, 2], 'text', 3, null, true]) {
      await refused(400, 'QEMBED_INVALID_METADATA', put([good, { id: 'm', text: 't', metadata }]));
    }
    await refused(400, 'QEMBED_EMPTY_INPUT', put([]));
    await refused(413, 'QEMBED_TOO_MANY_INPUTS', put(docs(9, 'many')));
    await refused(400, 'QEMBED_INVALID_DOCUMENT_ID', put([good, { id: '', text: 't' }]));
    await refused(400, 'QEMBED_INVALID_DOCUMENT_ID', put([good, { id: 'x'.repeat(257), text: 't' }]));
    await refused(400, 'QEMBED_INVALID_DOCUMENT_ID', put([good, { id: 5, text: 't' }]));
    await refused(400, 'QEMBED_EMPTY_INPUT', put([good, { id: 'e', text: '' }]));
    await refused(413, 'QEMBED_INPUT_TOO_LONG', put([good, { id: 'l', text: 'x'.repeat(2001) }]));
    await refused(413, 'QEMBED_INPUT_TOO_LONG', put([good, { id: 'l', text: 'word '.repeat(300) }], { truncate: false }));
    await refused(400, 'QEMBED_DUPLICATE_DOCUMENT_ID', put([good, { id: 'twice', text: 'a' }, { id: 'twice', text: 'b' }]));
    await refused(400, 'QEMBED_INVALID_REQUEST', put([{ ...good, vector: [1] }]));
    await refused(400, 'QEMBED_INVALID_REQUEST', put([{ id: 'no-text' }]));
    await refused(404, 'QEMBED_DOCUMENT_NOT_FOUND', () => call('GET', '/collections/docs/documents/missing'));
    await refused(404, 'QEMBED_DOCUMENT_NOT_FOUND', () => call('DELETE', '/collections/docs/documents/missing'));
    await refused(400, 'QEMBED_EMPTY_INPUT', () => call('POST', '/collections/docs/documents/delete', { ids: [] }));
    await refused(400, 'QEMBED_INVALID_DOCUMENT_ID', () => call('POST', '/collections/docs/documents/delete', { ids: ['ok', ''] }));
  });

  it('refuses writes into a collection bound to another model (409 naming both fingerprints), changing nothing', async () => {
    t.store.createCollection('foreign', 'ffffffffffffffff', t.encoder.dimension);
    const e = await refused(409, 'QEMBED_MODEL_MISMATCH', () => call('PUT', '/collections/foreign/documents', { documents: docs(2) }));
    expect(e.message).toContain('ffffffffffffffff');
    expect(e.message).toContain(t.encoder.fingerprint);
  });
});
