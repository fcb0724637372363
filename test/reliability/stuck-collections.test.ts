/**
 * No collection can get stuck: a re-encoding is never refused by the request queue's bound,
 * a collection bound to a model that is no longer served can be re-encoded from its stored
 * texts, and a re-encoding resumed after a restart keeps the collection searchable on its old
 * codes when the old bundle is still there.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { loadBundle } from '../../src/encoder/bundle.js';
import { createEncoder, type Encoder } from '../../src/encoder/encoder.js';
import { QembedError } from '../../src/errors.js';
import { createSearchService } from '../../src/search/search-service.js';
import { FIXTURE_BUNDLE, memoryStorage } from '../helpers/app.js';
import { bundleCopy, recalibratedCopy } from '../helpers/bundles.js';
import { startServer } from '../helpers/server-process.js';

const temporary: string[] = [];
const tempDir = (prefix: string) => {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  temporary.push(dir);
  return dir;
};
afterAll(() => {
  for (const d of temporary) rmSync(d, { recursive: true, force: true });
});


const passage = (i: number) => `passage ${i} about ${['rivers', 'stars', 'bread', 'engines', 'music'][i % 5]} and more`;
const texts = (n: number) => Array.from({ length: n }, (_, i) => passage(i));

describe('a re-encoding under a saturated request queue', () => {
  it('is never refused by the queue bound, completes, and the collection stays searchable meanwhile', async () => {
    const config = loadConfig({}, { intraOpThreads: 1, queueSize: 16, maxInputs: 16, maxBatchSize: 8 });
    const oldEncoder = await createEncoder(await loadBundle(FIXTURE_BUNDLE), config);
    const newEncoder = await createEncoder(await loadBundle(recalibratedCopy(tempDir('qembed-b-'), 'b')), config);
    let active: Encoder = oldEncoder;
    const search = createSearchService({
      ...memoryStorage(),
      encoder: () => active,
      encoderFor: (fp) => [oldEncoder, newEncoder].find((e) => e.fingerprint === fp),
    });
    try {
      search.createCollection('c');
      for (let i = 0; i < 400; i += 8) await search.upsertDocuments('c', texts(400).slice(i, i + 8).map((text, k) => ({ id: `d${i + k}`, text })));
      const before = (await search.search({ collection: 'c', query: 'stars', topK: 5 })).hits.map((h) => h.id);

      // Saturate the request queue of the new model from many callers, then start the re-encoding.
      let refused = 0;
      let stop = false;
      const load = Array.from({ length: 12 }, async () => {
        while (!stop) {
          try {
            await newEncoder.embed(texts(8), { inputType: 'document', truncate: true });
          } catch (e) {
            if (!(e instanceof QembedError) || e.code !== 'QEMBED_QUEUE_FULL') throw e;
            refused++;
            await new Promise((r) => setTimeout(r, 2));
          }
        }
      });
      // Start once the queue is really full.
      for (let i = 0; refused === 0 && i < 2000; i++) await new Promise((r) => setTimeout(r, 1));
      expect(refused).toBeGreaterThan(0);
      active = newEncoder;
      // The re-encoding waits before its second step until searches have run with the first
      // step's codes staged: what they answer meanwhile is then always observed, on any machine
      // (without the hold, a fast one could finish before the first search).
      const SEARCHES_DURING = 3;
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      let steps = 0;
      const target: Encoder = Object.assign(Object.create(newEncoder) as Encoder, {
        embed: async (...args: Parameters<Encoder['embed']>) => {
          if (++steps === 2) await held;
          return newEncoder.embed(...args);
        },
      });
      const done = search.reencode('c', target);
      const during: string[][] = [];
      while (search.getCollection('c').reencode) {
        try {
          during.push((await search.search({ collection: 'c', query: 'stars', topK: 5 })).hits.map((h) => h.id));
        } catch (e) {
          // A search whose query was encoded as the re-encoding completed is encoded again with
          // the new model, whose queue this test keeps full: a 429 then is right, and only then.
          if (!(e instanceof QembedError) || e.code !== 'QEMBED_QUEUE_FULL' || search.getCollection('c').reencode) throw e;
        }
        if (during.length >= SEARCHES_DURING) release();
        await new Promise((r) => setTimeout(r, 5));
      }
      expect(await done).toBe('done');
      expect(steps).toBeGreaterThan(2);
      stop = true;
      await Promise.all(load);

      const c = search.getCollection('c');
      expect(c.fingerprint).toBe(newEncoder.fingerprint);
      expect(c.documents).toBe(400);
      expect(c.model).toMatchObject({ state: 'served', searchable: true });
      // While it ran, searches answered, every one on the old codes.
      expect(during.length).toBeGreaterThanOrEqual(SEARCHES_DURING);
      for (const ids of during) expect(ids).toEqual(before);
    } finally {
      await oldEncoder.close();
      await newEncoder.close();
    }
  });
});

describe('a collection bound to a bundle that is gone', () => {
  it('is re-encoded from its stored texts after a restart with another bundle, and nothing is lost', async () => {
    const dataDir = tempDir('qembed-data-');
    const modelsA = tempDir('qembed-models-a-');
    const modelsB = tempDir('qembed-models-b-');
    const a = bundleCopy(() => {}, { parent: modelsA, name: 'a' });
    const b = recalibratedCopy(modelsB, 'b');
    const env = { QEMBED_DATA_DIR: dataDir, QEMBED_INTRA_OP_THREADS: '1', QEMBED_LOG_LEVEL: 'warn' };
    const json = (r: Response) => r.json() as Promise<any>;

    const first = await startServer({ ...env, QEMBED_MODEL_DIR: a, QEMBED_MODELS_DIR: modelsA });
    const post = (url: string, body: object, base = first.url) =>
      fetch(`${base}${url}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect((await post('/collections', { name: 'kept' })).status).toBe(201);
    const documents = texts(60).map((text, i) => ({ id: `d${i}`, text, metadata: { i } }));
    const put = await fetch(`${first.url}/collections/kept/documents`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ documents }) });
    expect(put.status).toBe(200);
    expect((await first.stop('SIGTERM')).code).toBe(0);

    // Only bundle B now: the same model rebuilt elsewhere, another fingerprint.
    const second = await startServer({ ...env, QEMBED_MODEL_DIR: b, QEMBED_MODELS_DIR: modelsB });
    try {
      const search = () => post('/search', { collection: 'kept', query: 'stars', top_k: 5 }, second.url);
      const refused = await search();
      expect(refused.status).toBe(409);
      const error = (await json(refused)).error;
      expect(error.code).toBe('QEMBED_MODEL_MISMATCH');
      expect(error.message).toMatch(/POST \/collections\/kept\/reencode/);
      const stale = await json(await fetch(`${second.url}/collections/kept`));
      expect(stale.model).toMatchObject({ state: 'stale', searchable: false });
      expect(stale.model.action).toMatch(/POST \/collections\/kept\/reencode/);

      const started = await post('/collections/kept/reencode', {}, second.url);
      expect([202]).toContain(started.status);
      expect(['started', 'running']).toContain((await json(started)).state);
      let collection: any;
      for (let i = 0; i < 400; i++) {
        collection = await json(await fetch(`${second.url}/collections/kept`));
        if (collection.model.state === 'served') break;
        await new Promise((r) => setTimeout(r, 25));
      }
      expect(collection.model).toMatchObject({ state: 'served', searchable: true });
      expect(collection.documents).toBe(60);
      const found = await search();
      expect(found.status).toBe(200);
      expect((await json(found)).hits).toHaveLength(5);
      const doc = await json(await fetch(`${second.url}/collections/kept/documents/d7`));
      expect(doc).toMatchObject({ id: 'd7', text: documents[7]!.text, metadata: { i: 7 } });
      // Nothing to do the second time.
      expect((await post('/collections/kept/reencode', {}, second.url)).status).toBe(200);
    } finally {
      await second.stop('SIGTERM');
    }
  });
});

describe('a re-encoding interrupted by a restart', () => {
  it('resumes at start with the old model loaded: searches keep answering on the old codes until it completes', async () => {
    const dataDir = tempDir('qembed-data-');
    const models = tempDir('qembed-models-');
    const a = bundleCopy(() => {}, { parent: models, name: 'a' });
    const b = recalibratedCopy(models, 'b');
    const bFingerprint = (await loadBundle(b)).fingerprint;
    const env = { QEMBED_DATA_DIR: dataDir, QEMBED_MODELS_DIR: models, QEMBED_INTRA_OP_THREADS: '1', QEMBED_LOG_LEVEL: 'warn' };
    const t0 = performance.now();
    const first = await startServer({ ...env, QEMBED_MODEL_DIR: a });
    const startMs = performance.now() - t0;
    const post = (base: string, url: string, body: object = {}) =>
      fetch(`${base}${url}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect((await post(first.url, '/collections', { name: 'big' })).status).toBe(201);
    // Documents are added until adding them took as long as the whole start measured above:
    // re-encoding them (reading, encoding and writing each again, in smaller batches) takes at
    // least as long (4 times as long on the machine this was written on), so the re-encoding
    // resumed at start still runs when the restarted server first answers, on any machine.
    let n = 0;
    const ingestStarted = performance.now();
    while (n < 1000 || performance.now() - ingestStarted < startMs) {
      const documents = Array.from({ length: 250 }, (_, k) => ({ id: `d${n + k}`, text: passage(n + k) }));
      const put = await fetch(`${first.url}/collections/big/documents`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ documents }) });
      expect(put.status).toBe(200);
      n += 250;
    }
    expect((await post(first.url, `/models/${bFingerprint}/activate`)).status).toBe(200);
    // Stop while the background re-encoding runs: it pauses, its staged codes stay.
    expect((await first.stop('SIGTERM')).code).toBe(0);

    const second = await startServer({ ...env, QEMBED_MODEL_DIR: a });
    try {
      const health = (await (await fetch(`${second.url}/health`)).json()) as { model: { fingerprint: string } };
      expect(health.model.fingerprint).toBe(bFingerprint); // the activation survived the restart
      let sawRunning = false;
      let collection: any;
      for (;;) {
        collection = await (await fetch(`${second.url}/collections/big`)).json();
        const searched = await post(second.url, '/search', { collection: 'big', query: 'stars', top_k: 5 });
        expect(searched.status).toBe(200);
        if (!collection.reencode) break;
        sawRunning = true;
        expect(collection.model).toMatchObject({ state: 'stale', searchable: true });
      }
      expect(sawRunning).toBe(true);
      expect(collection).toMatchObject({ fingerprint: bFingerprint, documents: n, model: { state: 'served' } });
    } finally {
      await second.stop('SIGTERM');
    }
  });
});
