/**
 * Re-encoding a collection for another model while it is used: searches keep the old codes
 * (and model) until the new codes are complete, writes and deletes made meanwhile are not
 * lost, and the switch is atomic.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { loadBundle } from '../../src/encoder/bundle.js';
import { createEncoder, type Encoder } from '../../src/encoder/encoder.js';
import { createFirstStageIndex } from '../../src/first-stage/first-stage.js';
import { createSearchService, type SearchService } from '../../src/search/search-service.js';
import { openDatabase } from '../../src/store/database.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { createTestEncoder, memoryStorage } from '../helpers/app.js';
import { bundleCopy } from '../helpers/bundles.js';

let oldEncoder: Encoder;
let newEncoder: Encoder;
let active: Encoder;
let search: SearchService;

/** The new encoder, held at a gate: each embed waits until the test opens it. */
let gate: Promise<void> = Promise.resolve();
let open: () => void = () => {};
const closeGate = () => {
  gate = new Promise((r) => (open = r));
};

beforeAll(async () => {
  oldEncoder = await createTestEncoder();
  const dir = bundleCopy((m) => (m.calibration.min = m.calibration.min.map((x) => x - 0.03)));
  const real = await createEncoder(await loadBundle(dir), loadConfig({}, { intraOpThreads: 1 }));
  newEncoder = {
    ...real,
    async embed(texts, options) {
      await gate;
      return real.embed(texts, options);
    },
    close: () => real.close(),
  };
  active = oldEncoder;
  search = createSearchService({
    ...memoryStorage(),
    encoder: () => active,
    encoderFor: (fp) => [oldEncoder, newEncoder].find((e) => e.fingerprint === fp),
  });
  search.createCollection('c');
  await search.upsertDocuments(
    'c',
    Array.from({ length: 150 }, (_, i) => ({ id: `d${i}`, text: `passage ${i} on ${['rivers', 'stars', 'bread', 'engines', 'music'][i % 5]}` })),
  );
});
afterAll(async () => {
  await oldEncoder.close();
  await newEncoder.close();
});

const ids = async (query: string) => (await search.search({ collection: 'c', query, topK: 10 })).hits.map((h) => h.id);

describe('reencode', () => {
  it('serves the old codes until the new ones are complete, keeps concurrent writes, then switches', async () => {
    const before = await ids('stars');
    closeGate();
    active = newEncoder; // the service now serves the new model…
    const done = search.reencode('c', newEncoder); // …and the collection is re-encoded for it

    await new Promise((r) => setTimeout(r, 20));
    const during = search.getCollection('c');
    expect(during.fingerprint).toBe(oldEncoder.fingerprint);
    expect(during.reencode).toMatchObject({ targetFingerprint: newEncoder.fingerprint, total: 150 });
    // Searches still run on the old model and codes: same answers as before.
    expect(await ids('stars')).toEqual(before);

    // Writes and deletes during the re-encoding (encoded with the collection's current model).
    await search.upsertDocuments('c', [
      { id: 'new1', text: 'a new passage on stars, written during the switch' },
      { id: 'd3', text: 'passage 3, rewritten during the switch' },
    ]);
    search.deleteDocuments('c', ['d4', 'd5']);
    expect(search.getCollection('c').fingerprint).toBe(oldEncoder.fingerprint);

    open();
    await done;
    const after = search.getCollection('c');
    expect(after.fingerprint).toBe(newEncoder.fingerprint);
    expect(after.reencode).toBeNull();
    expect(after.documents).toBe(149);
    const report = await search.check('c', { reencode: true });
    expect(report.problems).toEqual([]);
    expect(report.indexed).toBe(149);
    // The document written during the switch is found by its own new-model embedding.
    const own = (await newEncoder.embed(['a new passage on stars, written during the switch'], { inputType: 'document', truncate: true })).vectors[0]!;
    expect((await search.search({ collection: 'c', vector: Array.from(own), topK: 1 })).hits[0]!.id).toBe('new1');
  });

  it('refuses a second re-encoding to another model while one runs, and is a no-op when already bound', async () => {
    await expect(search.reencode('c', newEncoder)).resolves.toBe('done');
    closeGate();
    active = oldEncoder;
    const back = search.reencode('c', oldEncoder);
    expect(() => search.reencode('c', newEncoder)).toThrow(/already being re-encoded/);
    open();
    await back;
    expect(search.getCollection('c').fingerprint).toBe(oldEncoder.fingerprint);
  });

  it('takes a vector to be the served model\'s: during the re-encoding it must name the model of the codes', async () => {
    expect(search.getCollection('c').fingerprint).toBe(oldEncoder.fingerprint);
    const oldVector = [...(await oldEncoder.embed(['stars'], { inputType: 'query', truncate: true })).vectors[0]!];
    closeGate();
    active = newEncoder;
    const done = search.reencode('c', newEncoder);
    await expect(search.search({ collection: 'c', vector: oldVector, topK: 3 })).rejects.toMatchObject({ code: 'QEMBED_MODEL_MISMATCH' });
    const named = await search.search({ collection: 'c', vector: oldVector, topK: 3, model: oldEncoder.fingerprint });
    expect(named.hits).toHaveLength(3);
    await expect(search.search({ collection: 'c', query: 'stars', topK: 3, model: newEncoder.fingerprint })).rejects.toMatchObject({ code: 'QEMBED_MODEL_MISMATCH' });
    open();
    await done;
    const newVector = [...(await newEncoder.embed(['stars'], { inputType: 'query', truncate: true })).vectors[0]!];
    expect((await search.search({ collection: 'c', vector: newVector, topK: 3 })).hits).toHaveLength(3);
  });
});

describe('the cost of a re-encoding', () => {
  it('reads each row once a pass: a cursor moves forward, and the remaining count is taken once a pass', async () => {
    const encoder = await createTestEncoder();
    const target = await createEncoder(await loadBundle(bundleCopy((m) => (m.calibration.max = m.calibration.max.map((x) => x + 0.02)))), loadConfig({}, { intraOpThreads: 1 }));
    try {
      const store = createSqliteStore(openDatabase({ file: ':memory:' }));
      const cursors: number[] = [];
      let counts = 0;
      const watched = {
        ...store,
        pendingReencode: (id: number, fp: string, limit: number, after?: number) => (cursors.push(after ?? 0), store.pendingReencode(id, fp, limit, after)),
        countPendingReencode: (id: number, fp: string) => (counts++, store.countPendingReencode(id, fp)),
      };
      let served = encoder;
      const service = createSearchService({ store: watched, firstStage: createFirstStageIndex(watched), encoder: () => served, encoderFor: (fp) => [encoder, target].find((e) => e.fingerprint === fp) });
      service.createCollection('big');
      const docs = Array.from({ length: 300 }, (_, i) => ({ id: `d${i}`, text: `text ${i}` }));
      for (let i = 0; i < docs.length; i += 100) await service.upsertDocuments('big', docs.slice(i, i + 100));
      served = target;
      expect(await service.reencode('big', target)).toBe('done');
      // One pass of ceil(300 / 64) = 5 steps with a rising cursor, then the empty end of the pass,
      // then one read from 0 that finds nothing: 7 reads, 2 counts.
      expect(cursors).toHaveLength(7);
      expect(cursors.slice(0, 6)).toEqual([...cursors.slice(0, 6)].sort((a, b) => a - b));
      expect(cursors[0]).toBe(0);
      expect(cursors.at(-1)).toBe(0);
      expect(counts).toBe(2);
      expect((await service.check('big')).problems).toEqual([]);
    } finally {
      await encoder.close();
      await target.close();
    }
  });
});
