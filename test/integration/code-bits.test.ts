/**
 * Compact first-stage codes: a collection scans only the first code_bits bits of each binary
 * code (one of the bundle's binary_code_bits), its index memory shrinks with them, int8
 * rescoring still uses every dimension, and an unsupported length changes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorOf, startTestApp, type TestApp } from '../helpers/app.js';
import { bundleCopy } from '../helpers/bundles.js';
import { createFirstStageIndex } from '../../src/first-stage/first-stage.js';
import type { CollectionRow } from '../../src/store/store.js';

let t: TestApp;
let plain: TestApp;
beforeAll(async () => {
  // The fixture's model (32 dimensions) declared as trained for 32-, 16- and 8-bit codes: the
  // field is not part of the fingerprint, the graph is the same.
  const dir = bundleCopy((m) => void (m.binary_code_bits = [32, 16, 8]), { refingerprint: false });
  t = await startTestApp({ modelDir: dir });
  plain = await startTestApp();
});
afterAll(async () => {
  await t.close();
  await plain.close();
});

type Method = 'GET' | 'POST' | 'PUT';
const call = (app: TestApp, method: Method, url: string, payload?: unknown) => app.app.inject({ method, url, ...(payload !== undefined && { payload: payload as object }) });
const docs = Array.from({ length: 40 }, (_, i) => ({ id: `d${i}`, text: `passage ${i} about ${['rivers', 'cities', 'music', 'stars'][i % 4]} and number ${i * 7}` }));

/** Hamming distance over the first `bits` bits of two packed codes. */
function hamming(a: Uint8Array, b: Uint8Array, bits: number): number {
  let d = 0;
  for (let i = 0; i < bits; i++) d += ((a[i >> 3]! >> (7 - (i & 7))) & 1) ^ ((b[i >> 3]! >> (7 - (i & 7))) & 1);
  return d;
}

async function ubinary(app: TestApp, texts: string[], inputType: 'query' | 'document'): Promise<Uint8Array[]> {
  const res = await call(app, 'POST', '/encode', { inputs: texts, precision: 'ubinary', input_type: inputType });
  expect(res.statusCode).toBe(200);
  return (res.json() as { embeddings: number[][] }).embeddings.map((e) => Uint8Array.from(e));
}

describe('the first stage of a compact collection', () => {
  it('takes memory in proportion to its code length', () => {
    // 100,000 synthetic codes of a 256-dimension model: 32 bytes each in full, 8 at 64 bits.
    const n = 100_000;
    const full = new Uint8Array(32);
    const row = (bits: number | null): CollectionRow => ({ id: 1, name: 'c', fingerprint: 'f', dimension: 256, created_at: '', document_count: n, payload_bytes: 0, reencode_target: null, code_bits: bits, generation: 0, target_recall: null, transform: null, transform_target: null });
    const memory = (bits: number | null) => {
      const firstStage = createFirstStageIndex({
        getCollectionById: () => row(bits),
        listCollections: () => [row(bits)],
        *iterateBinaryCodes() {
          for (let i = 1; i <= n; i++) yield [i, Buffer.from(full)] as [number, Buffer];
        },
        stagedBinaryCodes: () => [][Symbol.iterator](),
        stagedTransformCodes: () => [][Symbol.iterator](),
      });
      firstStage.loadIndexes();
      return firstStage.indexStats(1)!.memoryBytes;
    };
    const codes = (bytes: number) => n * bytes;
    const rowids = 4 * n;
    // Codes plus rowids (4 bytes), tombstone bits and at most a 64 KiB page of rounding.
    for (const [bits, bytes] of [[null, 32], [128, 16], [64, 8]] as const) {
      const m = memory(bits);
      expect(m).toBeGreaterThanOrEqual(codes(bytes) + rowids);
      expect(m).toBeLessThanOrEqual(codes(bytes) + rowids + n / 8 + 65536);
    }
  });
});

describe('collections with compact first-stage codes', () => {
  it('lists the lengths a model supports', async () => {
    const models = (await call(t, 'GET', '/models')).json() as { models: { active: boolean; binary_code_bits: number[] }[] };
    expect(models.models.find((m) => m.active)?.binary_code_bits).toEqual([32, 16, 8]);
  });

  it('scans only code_bits bits of each code, with rescoring over every dimension', async () => {
    for (const [name, bits] of [['full', undefined], ['half', 16], ['quarter', 8]] as const) {
      const made = await call(t, 'POST', '/collections', { name, ...(bits && { code_bits: bits }) });
      expect(made.statusCode, made.body).toBe(201);
      expect(made.json()).toMatchObject({ code_bits: bits ?? 32, dimension: 32 });
      expect((await call(t, 'PUT', `/collections/${name}/documents`, { documents: docs })).statusCode).toBe(200);
    }
    for (const [name, bytes] of [['full', 4], ['half', 2], ['quarter', 1]] as const) {
      const c = t.store.getCollection(name)!;
      for (const entry of t.firstStage.indexEntries(c.id)) expect(entry.code).toHaveLength(bytes);
    }

    const query = 'songs about the river';
    const [q] = await ubinary(t, [query], 'query');
    const codes = await ubinary(t, docs.map((d) => d.text), 'document');
    for (const [name, bits] of [['half', 16], ['quarter', 8]] as const) {
      // First stage alone: the score is 1 - 2·hamming/bits over the first `bits` bits.
      const res = await call(t, 'POST', '/search', { collection: name, query, top_k: 40, rescore: false });
      const hits = (res.json() as { hits: { id: string; score: number }[] }).hits;
      expect(hits).toHaveLength(40);
      for (const h of hits) {
        const d = hamming(q!, codes[Number(h.id.slice(1))]!, bits);
        expect(h.score).toBe(1 - (2 * d) / bits);
      }
      const distances = hits.map((h) => hamming(q!, codes[Number(h.id.slice(1))]!, bits));
      expect(distances).toEqual([...distances].sort((a, b) => a - b));
      // With rescoring over every candidate the ranking is int8's, as in the full collection.
      const rescored = await call(t, 'POST', '/search', { collection: name, query, top_k: 10, rescore_multiplier: 4 });
      const full = await call(t, 'POST', '/search', { collection: 'full', query, top_k: 10, rescore_multiplier: 4 });
      expect(rescored.json().hits.map((h: { id: string }) => h.id)).toEqual(full.json().hits.map((h: { id: string }) => h.id));
      // The asymmetric first stage works at every length.
      const asym = await call(t, 'POST', '/search', { collection: name, query, top_k: 5, first_stage: 'asymmetric' });
      expect(asym.statusCode).toBe(200);
      expect(asym.json().hits).toHaveLength(5);
    }
  });

  it('keeps the length across a reload of the index, and the consistency check agrees', async () => {
    const before = (await call(t, 'POST', '/search', { collection: 'half', query: 'cities', top_k: 10, rescore: false })).json();
    const c = t.store.getCollection('half')!;
    // A fresh first stage over the same rows: what a restart loads.
    const { createSqliteStore } = await import('../../src/store/sqlite/sqlite-store.js');
    const reopened = createFirstStageIndex(createSqliteStore(t.db));
    expect(reopened.loadIndexes()).toBeGreaterThan(0);
    expect(reopened.indexStats(c.id)?.documents).toBe(40);
    for (const entry of reopened.indexEntries(c.id)) expect(entry.code).toHaveLength(2);
    expect((await t.search.check('half')).problems).toEqual([]);
    const after = (await call(t, 'POST', '/search', { collection: 'half', query: 'cities', top_k: 10, rescore: false })).json();
    expect(after).toMatchObject({ hits: before.hits });
  });

  it('refuses a length the model does not support with a 400, creating nothing', async () => {
    for (const [app, bits] of [[t, 24], [t, 64], [plain, 16]] as const) {
      const res = await call(app, 'POST', '/collections', { name: 'nope', code_bits: bits });
      expect(res.statusCode).toBe(400);
      expect(errorOf(res).code).toBe('QEMBED_UNSUPPORTED_CODE_BITS');
      expect(errorOf(res).message).toContain('supports binary codes of');
      expect(app.store.getCollection('nope')).toBeUndefined();
    }
    for (const bits of [0, 7, 'x', 1.5]) {
      const res = await call(t, 'POST', '/collections', { name: 'nope', code_bits: bits });
      expect(res.statusCode).toBe(400);
      expect(t.store.getCollection('nope')).toBeUndefined();
    }
  });
});

describe('activating a model without a collection’s code length', () => {
  it('is refused before the switch (409), changing nothing', async () => {
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const { recalibratedCopy } = await import('../helpers/bundles.js');
    const modelsDir = mkdtempSync(path.join(tmpdir(), 'qembed-models-'));
    const served = bundleCopy((m) => void (m.binary_code_bits = [32, 16, 8]), { parent: modelsDir, name: 'bits', refingerprint: false });
    recalibratedCopy(modelsDir, 'plain'); // the fixture's full length only
    const u = await startTestApp({ modelsDir, modelDir: served });
    try {
      expect((await call(u, 'POST', '/collections', { name: 'compact', code_bits: 16 })).statusCode).toBe(201);
      const plain = ((await call(u, 'GET', '/models')).json() as { models: { name: string; fingerprint: string }[] }).models.find((m) => m.name === 'plain')!;
      const res = await call(u, 'POST', `/models/${plain.fingerprint}/activate`);
      expect(res.statusCode).toBe(409);
      expect(errorOf(res).message).toContain('collection "compact" scans 16-bit codes');
      expect(u.registry.active().fingerprint).toBe(u.encoder.fingerprint);
      expect(u.store.getCollection('compact')?.reencode_target).toBeNull();
    } finally {
      await u.close();
    }
  });
});
