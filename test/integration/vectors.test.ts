/**
 * Bring-your-own vectors: a document may carry its float32 embedding (computed elsewhere with the
 * collection's model) instead of, or beside, its text. Its codes are the quantization of that
 * vector, exactly what the same vector gets when qembed computes it from the text; a vector of
 * another model, dimension or non-finite values is refused and changes nothing; such documents
 * are never re-encoded silently.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorOf, startTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
/** The vectors the first test stored (sent again, byte for byte, by the second). */
let sent: number[][] = [];
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => t.close());

type Method = 'GET' | 'POST' | 'PUT';
const call = (method: Method, url: string, payload?: unknown) => t.app.inject({ method, url, ...(payload !== undefined && { payload: payload as object }) });
const texts = ['a river in spring', 'the city at night', 'music for a long drive', 'stars over the sea'];

/** /encode's vectors, one text a call: the upsert of one text computes it the same way, bit for bit. */
async function vectorsOf(inputs: string[]): Promise<number[][]> {
  const out: number[][] = [];
  for (const text of inputs) out.push(...((await call('POST', '/encode', { inputs: [text] })).json() as { embeddings: number[][] }).embeddings);
  return out;
}
const stored = (collection: string) => {
  const c = t.store.getCollection(collection)!;
  return new Map([...t.store.iterateDocuments(c.id)].map((d) => [d.docId, d]));
};

describe('documents given as vectors', () => {
  it('get the codes their vector gets from a text, with or without a text', async () => {
    await call('POST', '/collections', { name: 'byo' });
    const vectors = await vectorsOf(texts);
    sent = vectors;
    const fp = t.encoder.fingerprint;
    const base64 = Buffer.from(Float32Array.from(vectors[2]!).buffer).toString('base64');
    const res = await call('PUT', '/collections/byo/documents', {
      model: fp,
      documents: [
        { id: 'text', text: texts[0] },
        { id: 'vector', vector: vectors[0] },
        { id: 'both', text: 'only stored', vector: vectors[1] },
        { id: 'base64', vector: base64, metadata: { kind: 'b64' } },
      ],
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ upserted: 4 });
    const rows = stored('byo');
    expect(rows.get('vector')!.binaryCode).toEqual(rows.get('text')!.binaryCode);
    expect(rows.get('vector')!.int8Code).toEqual(rows.get('text')!.int8Code);
    expect((await call('GET', '/collections/byo/documents/vector')).json()).toMatchObject({ id: 'vector', text: null });
    expect((await call('GET', '/collections/byo/documents/both')).json()).toMatchObject({ text: 'only stored' });
    // Searchable like any document; a vector-only hit has no text.
    const hits = (await call('POST', '/search', { collection: 'byo', query: texts[2], top_k: 4 })).json().hits as { id: string; text: string | null }[];
    expect(hits.find((h) => h.id === 'base64')).toMatchObject({ text: null });
    expect((await t.search.check('byo')).problems).toEqual([]);
  });

  it('are unchanged when sent again, rewritten when the vector changes', async () => {
    const [v] = await vectorsOf([texts[3]!]);
    const again = await call('PUT', '/collections/byo/documents', { model: t.encoder.bundle.manifest.name, documents: [{ id: 'vector', vector: sent[0] }] });
    expect(again.json()).toMatchObject({ upserted: 0, unchanged: 1 });
    const changed = await call('PUT', '/collections/byo/documents', { model: t.encoder.fingerprint, documents: [{ id: 'vector', vector: v }] });
    expect(changed.json()).toMatchObject({ upserted: 1 });
  });

  it('are refused from another model (409), without a model, of another dimension or not finite (400), changing nothing', async () => {
    const [v] = await vectorsOf([texts[0]!]);
    const before = JSON.stringify([...stored('byo').values()].map((d) => [d.docId, d.textSha256]));
    const cases: [unknown, number, string][] = [
      [{ model: '0123456789abcdef', documents: [{ id: 'x', vector: v }] }, 409, 'QEMBED_MODEL_MISMATCH'],
      [{ documents: [{ id: 'x', vector: v }] }, 400, 'QEMBED_INVALID_REQUEST'],
      [{ model: t.encoder.fingerprint, documents: [{ id: 'x', vector: v!.slice(1) }] }, 400, 'QEMBED_INVALID_VECTOR'],
      [{ model: t.encoder.fingerprint, documents: [{ id: 'x', vector: v!.map((x, i) => (i === 0 ? 1e39 : x)) }] }, 400, 'QEMBED_INVALID_VECTOR'],
      [{ model: t.encoder.fingerprint, documents: [{ id: 'x', vector: 'not base64!' }] }, 400, 'QEMBED_INVALID_VECTOR'],
      [{ model: t.encoder.fingerprint, documents: [{ id: 'x', vector: ['a'] }] }, 400, 'QEMBED_INVALID_VECTOR'],
      [{ model: t.encoder.fingerprint, documents: [{ id: 'x' }] }, 400, 'QEMBED_INVALID_REQUEST'],
      [{ model: t.encoder.fingerprint, documents: [{ id: 'ok', text: 'fine' }, { id: 'x', vector: [1, 2] }] }, 400, 'QEMBED_INVALID_VECTOR'],
    ];
    for (const [body, status, code] of cases) {
      const res = await call('PUT', '/collections/byo/documents', body);
      expect(res.statusCode, JSON.stringify(body).slice(0, 80)).toBe(status);
      expect(errorOf(res).code).toBe(code);
    }
    expect(JSON.stringify([...stored('byo').values()].map((d) => [d.docId, d.textSha256]))).toBe(before);
  });

  it('block a re-encoding, which says why instead of dropping them', () => {
    const problem = t.search.reencodeProblem('byo', { fingerprint: 'ffffffffffffffff', name: 'other', codeBits: [t.encoder.dimension] });
    expect(problem).toMatch(/holds 3 documents given as vectors/);
    expect(t.search.reencodeProblem('byo', { fingerprint: 'ffffffffffffffff', name: 'other', codeBits: [8] })).toMatch(/does not offer/);
  });
});
