import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asymmetricCosine, asymmetricScorer } from '../../src/first-stage/asymmetric.js';
import { errorOf, startTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
const texts = Array.from({ length: 120 }, (_, i) => `document ${i}: ${['cats and dogs', 'binary quantization', 'sqlite storage', 'hamming distance', 'rescoring with int8'][i % 5]} ${'x'.repeat(i % 7)}`);

beforeAll(async () => {
  t = await startTestApp({ maxInputs: 64, queueSize: 256 });
  await t.app.inject({ method: 'POST', url: '/collections', payload: { name: 'corpus' } });
  for (let i = 0; i < texts.length; i += 60) {
    const documents = texts.slice(i, i + 60).map((text, j) => ({
      id: `doc-${i + j}`,
      text,
      metadata: { group: (i + j) % 4, even: (i + j) % 2 === 0, label: `l${(i + j) % 3}`, ...((i + j) % 10 === 0 && { flag: null }), ...((i + j) % 5 === 0 && { one: 1 }) },
    }));
    const res = await t.app.inject({ method: 'PUT', url: '/collections/corpus/documents', payload: { documents } });
    expect(res.statusCode).toBe(200);
  }
});
afterAll(async () => t.close());

interface Hit {
  id: string;
  score: number;
  text: string;
  metadata: Record<string, unknown>;
}
interface SearchBody {
  hits: Hit[];
  stats: Record<string, number>;
}
const search = async (payload: object) => {
  const res = await t.app.inject({ method: 'POST', url: '/search', payload: { collection: 'corpus', ...payload } });
  expect(res.statusCode, res.body).toBe(200);
  return res.json() as SearchBody;
};

const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i]!, 0);
const popcount = (x: number) => {
  let n = 0;
  for (; x; x &= x - 1) n++;
  return n;
};
const hamming = (a: Uint8Array, b: Uint8Array) => a.reduce((s, x, i) => s + popcount(x ^ b[i]!), 0);

/**
 * The vector an int8 code stands for, computed here from the bundle's ranges rather than with
 * the service's own dequantizer: code c of dimension i is the centre of bucket c + 128 of
 * [min_i, max_i] cut into 256, i.e. min_i + (c + 128.5) · (max_i − min_i) / 255.
 */
function bucketCentres(codes: Int8Array): Float32Array {
  const { min, max } = t.encoder.bundle.ranges;
  return Float32Array.from(codes, (c, i) => min[i]! + (c + 128.5) * ((max[i]! - min[i]!) / 255));
}

async function docVectors() {
  return (await t.encoder.embed(texts, { inputType: 'document', truncate: true })).vectors;
}

describe('POST /search', () => {
  it('ranks the binary candidates by float32 query · dequantized int8 document', async () => {
    const query = 'hamming distance between binary codes';
    const started = performance.now();
    const body = await search({ query, top_k: 5, rescore_multiplier: 3 });
    const wallMs = performance.now() - started;
    const q = (await t.encoder.embed([query], { inputType: 'query', truncate: true })).vectors[0]!;
    const qBits = t.encoder.quantizer.toUbinary(q);
    const vectors = await docVectors();
    // The first stage: the 15 nearest by Hamming distance (ties by insertion order).
    const candidates = vectors
      .map((v, i) => ({ i, d: hamming(t.encoder.quantizer.toUbinary(v), qBits) }))
      .sort((a, b) => a.d - b.d || a.i - b.i)
      .slice(0, 15);
    // Rescoring: q · (the vector each int8 code stands for), never q · raw codes.
    const expected = candidates
      .map(({ i }) => ({ i, score: dot(q, bucketCentres(t.encoder.quantizer.toInt8(vectors[i]!))) }))
      .sort((a, b) => b.score - a.score)
      .slice(0, 5);
    expect(body.hits.map((h) => h.id)).toEqual(expected.map((e) => `doc-${e.i}`));
    body.hits.forEach((h, j) => expect(h.score).toBeCloseTo(expected[j]!.score, 4));
    expect(body.hits[0]!.text).toBe(texts[expected[0]!.i]);
    expect(body.stats).toMatchObject({ documents_scanned: 120, candidates: 15, candidates_rescored: 15, filter_ms: 0 });
    // The stages are parts of the request: durations in ms to the microsecond, together no more
    // than the whole request. (Not each above 0: a first stage over 120 documents can take less
    // than a microsecond on a fast machine.) Encoding runs the model: never within a microsecond.
    const stages = ['encode_ms', 'first_stage_ms', 'rescore_ms'].map((key) => body.stats[key] as number);
    for (const ms of stages) expect({ ms, nonNegative: ms >= 0, microseconds: Math.round(ms * 1000) / 1000 }).toEqual({ ms, nonNegative: true, microseconds: ms });
    expect(stages.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(wallMs);
    expect(body.stats.encode_ms).toBeGreaterThan(0);
  });

  it('takes a float32 vector instead of a text, with the same result and no encoding', async () => {
    const query = 'rescoring with int8';
    const q = (await t.encoder.embed([query], { inputType: 'query', truncate: true })).vectors[0]!;
    const byText = await search({ query, top_k: 8 });
    const byVector = await search({ vector: Array.from(q), top_k: 8 });
    expect(byVector.hits).toEqual(byText.hits);
    expect(byVector.stats.encode_ms).toBe(0);
  });

  it('without rescoring, ranks by Hamming distance with score 1 − 2·hamming/dim', async () => {
    const q = (await t.encoder.embed(['sqlite storage'], { inputType: 'query', truncate: true })).vectors[0]!;
    const qBits = t.encoder.quantizer.toUbinary(q);
    const body = await search({ vector: Array.from(q), top_k: 10, rescore: false });
    const vectors = await docVectors();
    const expected = vectors
      .map((v, i) => ({ i, d: hamming(t.encoder.quantizer.toUbinary(v), qBits) }))
      .sort((a, b) => a.d - b.d || a.i - b.i)
      .slice(0, 10);
    expect(body.hits.map((h) => h.id)).toEqual(expected.map((e) => `doc-${e.i}`));
    expect(body.hits.map((h) => h.score)).toEqual(expected.map((e) => 1 - (2 * e.d) / t.encoder.dimension));
    expect(body.stats).toMatchObject({ candidates: 10, candidates_rescored: 0, rescore_ms: 0 });
  });

  it('with the asymmetric first stage, ranks by a 4-bit query against the sign bits, and rescores its candidates', async () => {
    const q = (await t.encoder.embed(['sqlite storage'], { inputType: 'query', truncate: true })).vectors[0]!;
    const scorer = asymmetricScorer(q);
    const toCosine = asymmetricCosine(q);
    const vectors = await docVectors();
    const expected = vectors
      .map((v, i) => ({ i, s: scorer.score(t.encoder.quantizer.toUbinary(v), 0) }))
      .sort((a, b) => b.s - a.s || a.i - b.i)
      .slice(0, 10);
    const body = await search({ vector: Array.from(q), top_k: 10, rescore: false, first_stage: 'asymmetric' });
    expect(body.hits.map((h) => h.id)).toEqual(expected.map((e) => `doc-${e.i}`));
    expect(body.hits.map((h) => h.score)).toEqual(expected.map((e) => toCosine(7 * t.encoder.dimension - e.s)));
    const rescored = await search({ vector: Array.from(q), top_k: 5, rescore_multiplier: 4, first_stage: 'asymmetric' });
    expect(rescored.stats).toMatchObject({ candidates: 20, candidates_rescored: 20 });
    const bad = await t.app.inject({ method: 'POST', url: '/search', payload: { collection: 'corpus', query: 'x', first_stage: 'cosine' } });
    expect(bad.statusCode).toBe(400);
  });

  it('filters by equality on top-level metadata, respecting JSON types', async () => {
    const all = await search({ query: 'cats', top_k: 1000, rescore: false });
    expect(all.hits).toHaveLength(120);
    const check = async (filter: object, keep: (m: Record<string, unknown>) => boolean) => {
      const body = await search({ query: 'cats', top_k: 1000, filter });
      const want = all.hits.filter((h) => keep(h.metadata)).map((h) => h.id).sort();
      expect(body.hits.map((h) => h.id).sort()).toEqual(want);
      expect(body.stats.documents_scanned).toBe(want.length);
    };
    await check({ group: 2 }, (m) => m.group === 2);
    await check({ group: 2, label: 'l1' }, (m) => m.group === 2 && m.label === 'l1');
    await check({ even: true }, (m) => m.even === true);
    await check({ one: 1 }, (m) => m.one === 1);
    await check({ one: true }, () => false); // true is not 1
    await check({ flag: null }, (m) => 'flag' in m && m.flag === null);
    await check({ label: 'nope' }, () => false);
    await check({}, () => true);
    const body = await search({ query: 'cats', top_k: 3, filter: { group: 1 } });
    expect(body.hits.every((h) => h.metadata.group === 1)).toBe(true);
  });

  it('refuses bad requests with stable codes', async () => {
    const bad = async (status: number, code: string, payload: object) => {
      const before = t.search.getCollection('corpus');
      const res = await t.app.inject({ method: 'POST', url: '/search', payload: { collection: 'corpus', ...payload } });
      expect(res.statusCode, res.body).toBe(status);
      expect(errorOf(res).code).toBe(code);
      expect(t.search.getCollection('corpus')).toEqual(before);
    };
    for (const top_k of [0, 1001, 2.5, '10']) await bad(400, 'QEMBED_INVALID_TOP_K', { query: 'x', top_k });
    for (const rescore_multiplier of [0, 2001, 1.5]) await bad(400, 'QEMBED_INVALID_RESCORE_MULTIPLIER', { query: 'x', rescore_multiplier });
    await bad(400, 'QEMBED_INVALID_VECTOR', { vector: [0.1, 0.2, 0.3] });
    await bad(400, 'QEMBED_INVALID_VECTOR', { vector: new Array(t.encoder.dimension + 1).fill(0.1) });
    await bad(400, 'QEMBED_INVALID_VECTOR', { vector: ['a', ...new Array(t.encoder.dimension - 1).fill(0.1)] });
    await bad(400, 'QEMBED_INVALID_VECTOR', { vector: [] });
    await bad(400, 'QEMBED_INVALID_FILTER', { query: 'x', filter: { group: { $gt: 1 } } });
    await bad(400, 'QEMBED_INVALID_FILTER', { query: 'x', filter: { group: [1, 2] } });
    await bad(400, 'QEMBED_INVALID_FILTER', { query: 'x', filter: { 'a"b': 1 } });
    await bad(400, 'QEMBED_INVALID_FILTER', { query: 'x', filter: [1] });
    await bad(400, 'QEMBED_INVALID_FILTER', { query: 'x', filter: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, i])) });
    await bad(400, 'QEMBED_INVALID_REQUEST', { query: 'x', vector: new Array(t.encoder.dimension).fill(0.1) });
    await bad(400, 'QEMBED_INVALID_REQUEST', {});
    await bad(400, 'QEMBED_EMPTY_INPUT', { query: '' });
    await bad(400, 'QEMBED_INVALID_COLLECTION_NAME', { collection: 'bad name', query: 'x' });
  });

  it('refuses to search a collection bound to another model (409 naming both fingerprints)', async () => {
    t.store.createCollection('other-model', '0123456789abcdef', t.encoder.dimension);
    const res = await t.app.inject({ method: 'POST', url: '/search', payload: { collection: 'other-model', query: 'x' } });
    expect(res.statusCode).toBe(409);
    expect(errorOf(res).code).toBe('QEMBED_MODEL_MISMATCH');
    expect(errorOf(res).message).toContain('0123456789abcdef');
    expect(errorOf(res).message).toContain(t.encoder.fingerprint);
  });

  it('answers an empty collection with no hits', async () => {
    await t.app.inject({ method: 'POST', url: '/collections', payload: { name: 'empty' } });
    const res = await t.app.inject({ method: 'POST', url: '/search', payload: { collection: 'empty', query: 'x' } });
    expect(res.json()).toMatchObject({ hits: [], stats: { documents_scanned: 0, candidates: 0 } });
  });
});
