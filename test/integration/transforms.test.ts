/**
 * First-stage transforms served by a collection (src/search/transforms.ts): a switch recomputes
 * the codes from the stored int8 codes, stages them and swaps them in atomically (a search never
 * sees two transforms), resumes after a restart, measures a candidate before an `if-better`
 * switch, goes back to first dims, and refuses bad requests without changing anything.
 *
 * The collection is built from vectors (bring-your-own) of the 32-dimension fixture model, spread
 * inside its calibration ranges (helpers/transform-data.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Encoder } from '../../src/encoder/encoder.js';
import { QembedError } from '../../src/errors.js';
import { createFirstStageIndex } from '../../src/first-stage/first-stage.js';
import { createSearchService, type SearchService } from '../../src/search/search-service.js';
import { openDatabase } from '../../src/store/database.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/store/store.js';
import { codeOf, seededRotation } from '../../src/transform/transform.js';
import { createTestEncoder, memoryStorage } from '../helpers/app.js';
import { vectorsInRanges } from '../helpers/transform-data.js';

const D = 32;
const N = 400;
let encoder: Encoder;

const vectors = (n: number, seed: number) => vectorsInRanges(encoder.quantizer, n, seed);
let docs: Float32Array[];
let queries: Float32Array[];

function service(store: Store): SearchService {
  return createSearchService({ store, firstStage: createFirstStageIndex(store), encoder: () => encoder });
}

async function filled(store: Store, vectors = docs): Promise<SearchService> {
  const search = service(store);
  search.createCollection('c');
  for (let i = 0; i < vectors.length; i += 1000) {
    await search.upsertDocuments(
      'c',
      vectors.slice(i, i + 1000).map((v, j) => ({ id: `d${i + j}`, vector: Array.from(v) as unknown as Float32Array, metadata: { i: i + j } })),
      { model: encoder.fingerprint },
    );
  }
  return search;
}

/** The first stage's own top 10 (no rescoring), Hamming, by vector. */
const firstStageIds = async (search: SearchService, q: Float32Array) =>
  (await search.search({ collection: 'c', vector: Array.from(q), topK: 10, rescore: false })).hits.map((h) => h.id).join(',');

beforeAll(async () => {
  encoder = await createTestEncoder();
  docs = vectors(N, 11);
  queries = vectors(60, 12);
});
afterAll(async () => {
  await encoder.close();
});

const codeOfError = async (p: Promise<unknown> | (() => unknown)) => {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    return (e as QembedError).code;
  }
  return 'no error';
};

describe('a transform switch', () => {
  it('recomputes codes from int8, swaps them in atomically under concurrent searches, and goes back to first dims', async () => {
    const { store } = memoryStorage();
    const search = await filled(store);
    const rotation = search.addRotation('c', 7);
    expect(rotation).toMatchObject({ fingerprint: 'rotation-7', method: 'rotation', bits: D });
    expect(search.getCollection('c').transform).toMatchObject({ served: null, switching: null });

    const before = await Promise.all(queries.map((q) => firstStageIds(search, q)));
    // Searches run without pause while the switch stages and swaps; each must be entirely the
    // old codes' answer or entirely the new one's.
    const seen: string[][] = [];
    let switching = true;
    const searching = (async () => {
      while (switching) {
        seen.push(await Promise.all(queries.slice(0, 5).map((q) => firstStageIds(search, q))));
        // A search by vector never waits for anything: let the switch's steps run between them.
        await new Promise((r) => setImmediate(r));
      }
    })();
    const outcome = await search.switchTransform('c', 'rotation-7', 'always');
    switching = false;
    await searching;
    expect(outcome).toBe('switched');
    const after = await Promise.all(queries.map((q) => firstStageIds(search, q)));
    expect(after).not.toEqual(before);
    for (const answer of seen) expect([before.slice(0, 5).join('|'), after.slice(0, 5).join('|')]).toContain(answer.join('|'));

    const c = search.getCollection('c');
    expect(c.transform.served).toBe('rotation-7');
    expect((await search.check('c')).problems).toEqual([]);

    // Codes recomputed from int8 are the rotation's signs of the dequantized vectors; compared
    // with the signs of the original vectors they may differ only where |y| is within the int8
    // rounding: |Σ W_ji (x̂_i − x_i)| ≤ Σ |W_ji| step_i / 2.
    const t = seededRotation(D, D, 7);
    const steps = encoder.quantizer.steps;
    const row = store.getCollection('c')!;
    let differing = 0;
    for (const d of store.iterateDocuments(row.id)) {
      const v = docs[Number(d.docId.slice(1))]!;
      const fromVector = codeOf(t, v);
      for (let j = 0; j < D; j++) {
        const a = (d.firstCode![j >> 3]! >> (7 - (j & 7))) & 1;
        const b = (fromVector[j >> 3]! >> (7 - (j & 7))) & 1;
        if (a === b) continue;
        differing++;
        let y = 0;
        let bound = 0;
        for (let i = 0; i < D; i++) {
          y += t.matrix![j * D + i]! * v[i]!;
          bound += (Math.abs(t.matrix![j * D + i]!) * steps[i]!) / 2;
        }
        expect(Math.abs(y)).toBeLessThanOrEqual(bound + 1e-6);
      }
    }
    expect(differing).toBeLessThan(N * D * 0.05);

    // Documents written under the transform get its code; back to first dims needs no staging.
    await search.upsertDocuments('c', [{ id: 'late', vector: Array.from(queries[0]!) as unknown as Float32Array }], { model: encoder.fingerprint });
    expect((await search.check('c')).problems).toEqual([]);
    expect(await search.switchTransform('c', 'first-dims', 'always')).toBe('switched');
    expect(search.getCollection('c').transform.served).toBeNull();
    expect((await search.check('c')).problems).toEqual([]);
    expect(await Promise.all(queries.slice(1).map((q) => firstStageIds(search, q)))).toEqual(before.slice(1));
  });

  it('with if-better, swaps a candidate in only when it keeps more of the exact top 10, and records both figures', async () => {
    const { store } = memoryStorage();
    const search = await filled(store);
    // What a fit gives in spirit: centred on the documents' mean (then rotated: each bit mixes the dimensions).
    const mean = new Float32Array(D);
    for (const v of docs) for (let i = 0; i < D; i++) mean[i]! += v[i]! / N;
    const row = store.getCollection('c')!;
    const centred = { collectionId: row.id, method: 'itq', bits: D, dimension: D, summary: '{}', createdAt: new Date().toISOString() };
    store.saveTransform({ ...centred, fingerprint: 'centred', mean, matrix: seededRotation(D, D, 3).matrix! });
    expect(await search.switchTransform('c', 'centred', 'if-better')).toBe('switched');
    const switched = search.getCollection('c').transform.available.find((t) => t.fingerprint === 'centred')!;
    const comparison = switched.summary.comparison as { basis: string; queries: number; decision: string; served: { recall: Record<'hamming' | 'asymmetric', number> }; candidate: { recall: Record<'hamming' | 'asymmetric', number> } };
    expect(comparison).toMatchObject({ basis: 'documents', decision: 'switched', served: { transform: 'first-dims' } });
    expect(comparison.queries).toBeGreaterThan(100);
    expect(comparison.candidate.recall.hamming).toBeGreaterThan(comparison.served.recall.hamming);
    expect(comparison.candidate.recall.asymmetric).toBeGreaterThan(comparison.served.recall.asymmetric);

    // A transform whose every bit is the sign of dimension 0 (constant here) measures worse: kept out.
    const matrix = new Float32Array(D * D);
    for (let j = 0; j < D; j++) matrix[j * D] = 1;
    store.saveTransform({ ...centred, fingerprint: 'degenerate', mean: new Float32Array(D), matrix });
    expect(await search.switchTransform('c', 'degenerate', 'if-better')).toBe('kept');
    const c = search.getCollection('c');
    expect(c.transform).toMatchObject({ served: 'centred', switching: null });
    expect(c.transform.available.find((t) => t.fingerprint === 'degenerate')!.summary.comparison).toMatchObject({ decision: 'kept' });
    expect(store.getCollection('c')!.transform_target).toBeNull();
    expect((await search.check('c')).problems).toEqual([]);
  });

  it('resumes after a restart from the codes staged before it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'qembed-transforms-'));
    try {
      const file = path.join(dir, 'db.sqlite');
      const firstDb = openDatabase({ file });
      const first = createSqliteStore(firstDb);
      // More documents than a switch stages in one step (2,048), so that it stops half way.
      const many = vectors(5000, 13);
      const search = await filled(first, many);
      search.addRotation('c', 5);
      const running = search.switchTransform('c', 'rotation-5', 'always');
      // Stop as soon as some but not all codes are staged.
      while ((search.getCollection('c').transform.switching?.done ?? 0) === 0) await new Promise((r) => setImmediate(r));
      await search.stopBackground();
      expect(await running).toBe('stopped');
      const row = first.getCollection('c')!;
      expect(row).toMatchObject({ transform: null, transform_target: 'rotation-5' });
      const left = first.countPendingTransformCodes(row.id, 'rotation-5');
      expect(left).toBeGreaterThan(0);
      expect(left).toBeLessThan(many.length);
      firstDb.close();

      const db = openDatabase({ file });
      const second = createSqliteStore(db);
      const again = service(second);
      const ended = new Promise<unknown>((resolve) => expect(again.resumeSwitches((_, outcome) => resolve(outcome))).toEqual(['c']));
      expect(await ended).toBe('switched');
      expect(again.getCollection('c').transform.served).toBe('rotation-5');
      expect((await again.check('c')).problems).toEqual([]);
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses bad requests with a stable code and changes nothing', async () => {
    const { store } = memoryStorage();
    const search = await filled(store);
    expect(await codeOfError(() => search.switchTransform('c', 'nope', 'always'))).toBe('QEMBED_TRANSFORM_NOT_FOUND');
    expect(await codeOfError(() => search.switchTransform('missing', 'first-dims', 'always'))).toBe('QEMBED_COLLECTION_NOT_FOUND');
    expect(await codeOfError(() => search.addRotation('c', 0))).toBe('QEMBED_INVALID_TRANSFORM');
    // A transform of another code length cannot serve the collection.
    const row = store.getCollection('c')!;
    const short = seededRotation(D, 16, 2);
    store.saveTransform({ collectionId: row.id, fingerprint: 'short', method: 'rotation', bits: 16, dimension: D, mean: short.mean, matrix: short.matrix!, summary: '{}', createdAt: '' });
    expect(await codeOfError(() => search.switchTransform('c', 'short', 'always'))).toBe('QEMBED_TRANSFORM_MISMATCH');
    expect(store.getCollection('c')).toMatchObject({ transform: null, transform_target: null });
    expect((await search.check('c')).problems).toEqual([]);
  });
});
