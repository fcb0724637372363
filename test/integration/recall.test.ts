/**
 * Recall you can see and set (src/quality/): the estimate a collection reports equals the same
 * computation done here by brute force, `rescore_multiplier: "auto"` picks the smallest multiplier
 * that keeps the target on a collection built so that the answer is known, the sample stays
 * bounded, `rescore: "exact"` is the int8 ranking, measurements survive a restart, and every bad
 * input is refused with its code and changes nothing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compose } from '../../src/composition.js';
import { loadConfig } from '../../src/config.js';
import { MULTIPLIER_MAX, REPORTED_MULTIPLIERS } from '../../src/quality/estimate.js';
import { foldQuery, scoreInt8 } from '../../src/quantization/dequantize.js';
import { errorOf, FIXTURE_BUNDLE, startTestApp, type TestApp } from '../helpers/app.js';
import { xorshift32 } from '../helpers/random.js';

const next = xorshift32(23);
const uniform = () => next() / 4294967296 - 0.5;

interface Quality {
  basis: string | null;
  measured_queries: number;
  pending: number;
  sampled_queries: number;
  queries_seen: number;
  target_recall: number;
  measuring: { queries: number; scanned_documents: number; documents: number } | null;
  first_stages: Record<string, { auto_multiplier: number; target_met: boolean; recall_at_10: { multiplier: number; recall: number; low: number; high: number }[] }>;
}
interface Recall {
  multiplier: number | null;
  chosen_by: string;
  estimated_recall_at_10: number | null;
  interval: [number, number] | null;
  measured_queries: number;
  basis: string | null;
  target_recall: number | null;
  target_met: boolean | null;
}

async function call(t: TestApp, method: 'GET' | 'POST' | 'PUT' | 'PATCH', url: string, payload?: object) {
  return t.app.inject({ method, url, ...(payload && { payload }) });
}
async function ok<T>(t: TestApp, method: 'GET' | 'POST' | 'PUT' | 'PATCH', url: string, payload?: object): Promise<T> {
  const res = await call(t, method, url, payload);
  expect(res.statusCode, res.body).toBeLessThan(300);
  return res.json() as T;
}
const quality = async (t: TestApp, name: string) => (await ok<{ quality: Quality }>(t, 'GET', `/collections/${name}`)).quality;
const searchVector = (t: TestApp, collection: string, vector: Float32Array, extra: object = {}) =>
  ok<{ hits: { id: string; score: number }[]; recall: Recall; stats: { candidates: number } }>(t, 'POST', '/search', { collection, vector: Array.from(vector), ...extra });

async function putVectors(t: TestApp, collection: string, docs: { id: string; vector: Float32Array }[]) {
  for (let i = 0; i < docs.length; i += 64) {
    await ok(t, 'PUT', `/collections/${collection}/documents`, {
      model: t.encoder.fingerprint,
      documents: docs.slice(i, i + 64).map((d) => ({ id: d.id, vector: Array.from(d.vector) })),
    });
  }
}

describe('recall measured on a collection', () => {
  let t: TestApp;
  const dim = 32;
  const docs = Array.from({ length: 300 }, (_, i) => ({ id: `d${i}`, vector: Float32Array.from({ length: dim }, uniform) }));
  const queries = Array.from({ length: 60 }, () => Float32Array.from({ length: dim }, uniform));

  beforeAll(async () => {
    t = await startTestApp();
    expect(t.encoder.dimension).toBe(dim);
    await ok(t, 'POST', '/collections', { name: 'r' });
    await putVectors(t, 'r', docs);
  });
  afterAll(async () => t.close());

  it('says before any measurement that there is none, and auto uses the documented default', async () => {
    const q = await quality(t, 'r');
    expect(q).toMatchObject({ basis: null, measured_queries: 0, sampled_queries: 0, target_recall: 0.99, measuring: null });
    expect(q.first_stages.hamming).toEqual({ auto_multiplier: 4, target_met: false, recall_at_10: [] });
    const r = await searchVector(t, 'r', queries[0]!, { rescore_multiplier: 'auto' });
    expect(r.recall).toEqual({ multiplier: 4, chosen_by: 'auto', estimated_recall_at_10: null, interval: null, measured_queries: 0, basis: null, target_recall: 0.99, target_met: false });
    expect(r.stats.candidates).toBe(40);
  });

  it('estimates recall@10 per multiplier as a brute-force computation of the same definition does', async () => {
    for (const q of queries.slice(1)) await searchVector(t, 'r', q);
    expect((await quality(t, 'r')).pending).toBe(60);
    await t.search.measureQuality('r');
    const q = await quality(t, 'r');
    expect(q).toMatchObject({ basis: 'queries', measured_queries: 60, pending: 0, sampled_queries: 60, queries_seen: 60, measuring: null });

    // By hand: the exact int8 top 10 of each query (the score rescoring uses; ties by rowid), and
    // the Hamming order (distance to the query's sign bits, ties by rowid), as the definition says.
    const c = t.store.getCollection('r')!;
    const rowids = docs.map((d) => t.store.getDocument(c.id, d.id)!.rowid);
    const codes = t.store.int8Codes(rowids).map((b) => new Int8Array(b!.buffer, b!.byteOffset, b!.length));
    const signs = docs.map((d) => Array.from(d.vector, (x) => x > 0));
    const perQuery = queries.map((query) => {
      const folded = foldQuery(query, t.encoder.quantizer);
      const exact = rowids.map((rowid, i) => ({ rowid, score: scoreInt8(folded, codes[i]!) })).sort((a, b) => b.score - a.score || a.rowid - b.rowid).slice(0, 10);
      const qSigns = Array.from(query, (x) => x > 0);
      const hamming = rowids
        .map((rowid, i) => ({ rowid, d: signs[i]!.reduce((n, s, j) => n + (s !== qSigns[j] ? 1 : 0), 0) }))
        .sort((a, b) => a.d - b.d || a.rowid - b.rowid)
        .map((h) => h.rowid);
      return exact.map((e) => hamming.indexOf(e.rowid));
    });
    const reported = q.first_stages.hamming!.recall_at_10;
    expect(reported.map((r) => r.multiplier)).toEqual(expect.arrayContaining([...REPORTED_MULTIPLIERS]));
    for (const r of reported) {
      const byHand = perQuery.reduce((s, positions) => s + positions.filter((p) => p < 10 * r.multiplier).length / 10, 0) / queries.length;
      // Means of 60 multiples of 0.1 summed in another order: they differ by at most 60 roundings of a sum below 60 (< 1e-12).
      expect(r.recall).toBeCloseTo(byHand, 12);
    }
    // 300 documents, 10·m candidates: from m = 30 every document is rescored, and recall is 1.
    const last = reported.at(-1)!;
    expect(last.recall).toBe(1);
    expect(last.low).toBeLessThanOrEqual(last.recall);
    expect(last.high).toBeGreaterThanOrEqual(last.recall);
  });

  it('says in every answer the multiplier used and the recall estimated for it', async () => {
    const q = await quality(t, 'r');
    const asked = await searchVector(t, 'r', queries[0]!, { rescore_multiplier: 3 });
    const at3 = q.first_stages.hamming!.recall_at_10.find((r) => r.multiplier === 3)!;
    expect(asked.recall).toEqual({ multiplier: 3, chosen_by: 'request', estimated_recall_at_10: at3.recall, interval: [at3.low, at3.high], measured_queries: 60, basis: 'queries', target_recall: null, target_met: null });
    const auto = await searchVector(t, 'r', queries[0]!, { rescore_multiplier: 'auto', first_stage: 'asymmetric' });
    expect(auto.recall.multiplier).toBe(q.first_stages.asymmetric!.auto_multiplier);
    expect(auto.recall.chosen_by).toBe('auto');
    const unrescored = await searchVector(t, 'r', queries[0]!, { rescore: false });
    expect(unrescored.recall).toMatchObject({ multiplier: 1, estimated_recall_at_10: q.first_stages.hamming!.recall_at_10[0]!.recall });
  });

  it('ranks every document by its int8 code with rescore "exact"', async () => {
    const query = queries[5]!;
    const r = await searchVector(t, 'r', query, { rescore: 'exact', top_k: 10 });
    expect(r.recall).toMatchObject({ multiplier: null, chosen_by: 'exact', estimated_recall_at_10: 1 });
    // By hand, from the bucket centres: min + (c + 128.5)·(max − min)/255 per dimension. Its sum
    // differs from the folded score by float32 rounding of 32 products of magnitude < 1 (< 1e-5).
    const { min, max } = t.encoder.bundle.ranges;
    const c = t.store.getCollection('r')!;
    const byHand = docs
      .map((d) => {
        const b = t.store.int8Codes([t.store.getDocument(c.id, d.id)!.rowid])[0]!;
        const code = new Int8Array(b.buffer, b.byteOffset, b.length);
        return { id: d.id, score: Array.from(code).reduce((s, x, i) => s + query[i]! * (min[i]! + (x + 128.5) * ((max[i]! - min[i]!) / 255)), 0) };
      })
      .sort((a, b) => b.score - a.score);
    expect(r.hits.map((h) => h.score)).toEqual(byHand.slice(0, 10).map((h) => expect.closeTo(h.score, 5)));
    expect(byHand[9]!.score - byHand[10]!.score).toBeGreaterThan(1e-5); // so the top 10 is one set whatever the rounding
    expect(new Set(r.hits.map((h) => h.id))).toEqual(new Set(byHand.slice(0, 10).map((h) => h.id)));
  });

  it('refuses bad recall settings and searches with a clear code, and changes nothing', async () => {
    for (const bad of [0, -0.5, 1.01, 'high', null]) {
      const res = await call(t, 'POST', '/collections', { name: 'bad', target_recall: bad });
      expect(res.statusCode).toBe(400);
      expect(errorOf(res).code).toBe('QEMBED_INVALID_TARGET_RECALL');
    }
    expect((await call(t, 'GET', '/collections/bad')).statusCode).toBe(404);
    for (const bad of [0, 2, 'x']) {
      const res = await call(t, 'PATCH', '/collections/r', { target_recall: bad });
      expect(errorOf(res).code).toBe('QEMBED_INVALID_TARGET_RECALL');
    }
    expect((await quality(t, 'r')).target_recall).toBe(0.99);
    const missing = await call(t, 'PATCH', '/collections/nope', { target_recall: 0.9 });
    expect([missing.statusCode, errorOf(missing).code]).toEqual([404, 'QEMBED_COLLECTION_NOT_FOUND']);
    const missingQuality = await call(t, 'GET', '/collections/nope');
    expect([missingQuality.statusCode, errorOf(missingQuality).code]).toEqual([404, 'QEMBED_COLLECTION_NOT_FOUND']);
    const v = Array.from(queries[0]!);
    for (const body of [
      { rescore_multiplier: 'fast' },
      { rescore_multiplier: 0 },
      { rescore_multiplier: MULTIPLIER_MAX + 1 },
      { rescore_multiplier: 'auto', max_rescore_multiplier: MULTIPLIER_MAX + 1 },
      { rescore_multiplier: 'auto', max_rescore_multiplier: 0 },
      { rescore_multiplier: 4, max_rescore_multiplier: 8 },
      { max_rescore_multiplier: 8 },
    ]) {
      const res = await call(t, 'POST', '/search', { collection: 'r', vector: v, ...body });
      expect([res.statusCode, errorOf(res).code], JSON.stringify(body)).toEqual([400, 'QEMBED_INVALID_RESCORE_MULTIPLIER']);
    }
    const badRescore = await call(t, 'POST', '/search', { collection: 'r', vector: v, rescore: 'approximately' });
    expect(badRescore.statusCode).toBe(400);
    // None of the refused searches reached the sample.
    expect((await quality(t, 'r')).queries_seen).toBe(64); // the 64 searches above that were answered
  });

  it('refuses an exact search above the configured document limit', async () => {
    const small = await startTestApp({ exactMaxDocuments: 100 });
    try {
      await ok(small, 'POST', '/collections', { name: 'big' });
      await putVectors(small, 'big', docs.slice(0, 101));
      const res = await call(small, 'POST', '/search', { collection: 'big', vector: Array.from(queries[0]!), rescore: 'exact' });
      expect([res.statusCode, errorOf(res).code]).toEqual([400, 'QEMBED_EXACT_SEARCH_TOO_LARGE']);
      expect(errorOf(res).message).toContain('QEMBED_EXACT_MAX_DOCUMENTS=100');
      // A filter that matches fewer documents than the limit is allowed.
      const filtered = await call(small, 'POST', '/search', { collection: 'big', vector: Array.from(queries[0]!), rescore: 'exact', filter: { none: null } });
      expect(filtered.statusCode).toBe(200);
    } finally {
      await small.close();
    }
  });
});

describe('rescore_multiplier "auto"', () => {
  let t: TestApp;
  // A collection where the answer is known. The query points along +1 in every dimension of the
  // bundle's ranges. Ten "neighbours" agree with it strongly on 24 dimensions and weakly disagree
  // on 8 (Hamming distance 8, the highest int8 scores); ten "decoys" agree in sign everywhere but
  // weakly (Hamming 0, low scores); the rest are half and half (Hamming 16, scores near 0). So the
  // first stage ranks the decoys first, then the neighbours: with 10 candidates (multiplier 1)
  // none of the exact top 10 is found, with 20 (multiplier 2) all of them.
  const dim = 32;
  let query: Float32Array;
  beforeAll(async () => {
    t = await startTestApp();
    const { min, max } = t.encoder.bundle.ranges;
    const at = (i: number, share: number) => (share >= 0 ? share * max[i]! : -share * min[i]!);
    const vector = (f: (i: number) => number) => Float32Array.from({ length: dim }, (_, i) => f(i));
    query = vector((i) => at(i, 0.5));
    const neighbours = Array.from({ length: 10 }, (_, k) => ({ id: `n${k}`, vector: vector((i) => (i < 24 ? at(i, 0.9) : at(i, -0.02))) }));
    const decoys = Array.from({ length: 10 }, (_, k) => ({ id: `x${k}`, vector: vector((i) => at(i, 0.03)) }));
    const rest = Array.from({ length: 100 }, (_, k) => ({ id: `r${k}`, vector: vector((i) => ((i + k) % 2 === 0 ? at(i, 0.05) : at(i, -0.05))) }));
    await ok(t, 'POST', '/collections', { name: 'known' });
    await putVectors(t, 'known', [...decoys, ...neighbours, ...rest]);
    for (let i = 0; i < 50; i++) await searchVector(t, 'known', query);
    await t.search.measureQuality('known');
  });
  afterAll(async () => t.close());

  it('picks the smallest multiplier whose lower bound meets the target, and finds the neighbours with it', async () => {
    const q = await quality(t, 'known');
    expect(q.first_stages.hamming!.recall_at_10.slice(0, 2).map((r) => r.recall)).toEqual([0, 1]);
    expect(q.first_stages.hamming!.auto_multiplier).toBe(2);
    const r = await searchVector(t, 'known', query, { rescore_multiplier: 'auto' });
    expect(r.recall).toMatchObject({ multiplier: 2, chosen_by: 'auto', estimated_recall_at_10: 1, target_met: true, basis: 'queries', measured_queries: 50 });
    expect(r.hits.map((h) => h.id).sort()).toEqual(Array.from({ length: 10 }, (_, k) => `n${k}`).sort());
    const one = await searchVector(t, 'known', query, { rescore_multiplier: 1 });
    expect(one.hits.every((h) => h.id.startsWith('x'))).toBe(true);
  });

  it('takes the most it may when no multiplier reaches the target, and says so', async () => {
    // 50 queries that all found everything: the lower bound is 1 − 2.326·√(p̃(1 − p̃)/10/50) ≈ 0.9935 (estimate.ts), short of 0.999.
    const patched = await ok<{ quality: Quality }>(t, 'PATCH', '/collections/known', { target_recall: 0.999 });
    expect(patched.quality).toMatchObject({ target_recall: 0.999 });
    expect(patched.quality.first_stages.hamming).toMatchObject({ auto_multiplier: MULTIPLIER_MAX, target_met: false });
    const capped = await searchVector(t, 'known', query, { rescore_multiplier: 'auto', max_rescore_multiplier: 5 });
    expect(capped.recall).toMatchObject({ multiplier: 5, target_recall: 0.999, target_met: false });
    const reset = await ok<{ quality: Quality }>(t, 'PATCH', '/collections/known', { target_recall: null });
    expect(reset.quality.target_recall).toBe(0.99);
  });
});

describe('the sample of queries', () => {
  it('stays bounded however many queries are served', async () => {
    const t = await startTestApp({ qualitySample: 20 });
    try {
      await ok(t, 'POST', '/collections', { name: 's' });
      await putVectors(t, 's', Array.from({ length: 30 }, (_, i) => ({ id: `d${i}`, vector: Float32Array.from({ length: 32 }, uniform) })));
      for (let i = 0; i < 100; i++) await searchVector(t, 's', Float32Array.from({ length: 32 }, uniform));
      expect(await quality(t, 's')).toMatchObject({ sampled_queries: 20, queries_seen: 100, pending: 20 });
      // A search that keeps its query out (held-out queries of bench:recall-service) is not counted.
      await t.search.search({ collection: 's', vector: Array.from({ length: 32 }, uniform), sampled: false });
      expect(await quality(t, 's')).toMatchObject({ sampled_queries: 20, queries_seen: 100 });
    } finally {
      await t.close();
    }
  });

  it('is off with QEMBED_QUALITY_SAMPLE=0: nothing kept, auto uses the default', async () => {
    const t = await startTestApp({ qualitySample: 0 });
    try {
      await ok(t, 'POST', '/collections', { name: 'off' });
      await putVectors(t, 'off', [{ id: 'd', vector: Float32Array.from({ length: 32 }, uniform) }]);
      const r = await searchVector(t, 'off', Float32Array.from({ length: 32 }, uniform), { rescore_multiplier: 'auto' });
      expect(r.recall.multiplier).toBe(4);
      expect(await quality(t, 'off')).toMatchObject({ enabled: false, sampled_queries: 0, queries_seen: 0 });
    } finally {
      await t.close();
    }
  });

  it('uses documents as stand-ins until queries are served, and keeps its measurements across a restart', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'qembed-quality-'));
    const config = loadConfig({}, { dataDir, modelDir: FIXTURE_BUNDLE, intraOpThreads: 1 });
    try {
      const first = await compose(config, { database: 'configured', model: { dir: FIXTURE_BUNDLE } });
      first.search.createCollection('p');
      const vectors = Array.from({ length: 150 }, (_, i) => ({ id: `d${i}`, vector: Float32Array.from({ length: 32 }, uniform) }));
      await first.search.upsertDocuments('p', vectors, { model: first.encoder().fingerprint });
      const measured = (await first.search.measureQuality('p')).quality;
      expect(measured).toMatchObject({ basis: 'documents', measured: 100, sampled: 0 });
      await first.close();

      const second = await compose(config, { database: 'configured', model: { dir: FIXTURE_BUNDLE } });
      try {
        expect(second.search.getCollection('p').quality).toEqual(measured);
      } finally {
        await second.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
