/**
 * The storage contract (src/store/store.ts), one suite run against both implementations:
 * SQLite always, PostgreSQL when ./scripts/test provides its binaries (TEST_POSTGRES_BIN; a
 * notice otherwise, and a failure under CI). Every case starts from a fresh database. Each
 * store is used as search uses it: with its first stage (src/first-stage/) kept in step by the
 * changes its writes return, so the suite also checks that every backend reports what it changed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QembedError } from '../../src/errors.js';
import { createFirstStageIndex, type FirstStageIndex } from '../../src/first-stage/first-stage.js';
import { keepInStep } from '../../src/first-stage/in-step.js';
import { hammingQuery } from '../../src/first-stage/query.js';
import { openDatabase } from '../../src/store/database.js';
import { createPostgresStore, type PostgresStore, type PostgresStoreOptions } from '../../src/store/postgres/postgres-store.js';
import { createPgBridge } from '../../src/store/postgres/bridge.js';
import { migratePostgres } from '../../src/store/postgres/migrate.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { type DocumentWrite, type MetadataFilter, StaleWriteError, type Store } from '../../src/store/store.js';
import { postgresBin, postgresNotice, type PostgresServer, startPostgres } from '../helpers/postgres.js';
import { xorshift32 } from '../helpers/random.js';

const next = xorshift32(17);
const BYTES = 4;
const code = () => Uint8Array.from({ length: BYTES }, () => next() & 255);
const doc = (id: string, metadata: object = {}, text = `text of ${id}`): DocumentWrite => ({
  docId: id,
  text,
  metadata: JSON.stringify(metadata),
  textSha256: createHashLike(text),
  binaryCode: code(),
  int8Code: Int8Array.from({ length: 32 }, () => (next() & 255) - 128),
});
function createHashLike(text: string): string {
  let h = 0;
  for (const ch of text) h = (Math.imul(h, 31) + ch.charCodeAt(0)) >>> 0;
  return h.toString(16).padStart(64, '0');
}
const hamming = (a: Uint8Array, b: Uint8Array) => a.reduce((d, x, i) => d + popcount(x ^ b[i]!), 0);
const popcount = (x: number) => {
  let n = 0;
  for (; x; x &= x - 1) n++;
  return n;
};

/** A store (its writes kept in step with `firstStage`, as search-service.ts does) and its first stage. */
interface Opened {
  store: Store;
  firstStage: FirstStageIndex;
  /** The store without the first stage: what its writes return. */
  raw: Store;
}

interface Backend {
  name: string;
  /** A store over a fresh database. */
  open(): Opened;
  /** A second process's view of the same database (PostgreSQL only). */
  reopen?(opened: Opened, options?: PostgresStoreOptions): Opened;
}

const withFirstStage = (raw: Store): Opened => {
  const firstStage = createFirstStageIndex(raw);
  return { store: keepInStep(raw, firstStage), firstStage, raw };
};

postgresNotice('the storage contract suite');
let pgServer: PostgresServer | undefined;
let databases = 0;
const pgStores: PostgresStore[] = [];
const urls = new WeakMap<Store, string>();
const backends: Backend[] = [{ name: 'SQLite', open: () => withFirstStage(createSqliteStore(openDatabase({ file: ':memory:' }))) }];
if (postgresBin) {
  const pgOpen = (url: string, options: PostgresStoreOptions = {}) => {
    const bridge = createPgBridge(url);
    migratePostgres(bridge);
    const store = createPostgresStore(bridge, options);
    pgStores.push(store);
    urls.set(store, url);
    return withFirstStage(store);
  };
  backends.push({
    name: 'PostgreSQL',
    open: () => pgOpen(pgServer!.database(`contract_${++databases}`)),
    reopen: (opened, options) => pgOpen(urls.get(opened.raw)!, options),
  });
  // The first stage inside PostgreSQL (ORDER BY <~>) must answer exactly as the index does.
  backends.push({ name: 'PostgreSQL, exact first stage in SQL', open: () => pgOpen(pgServer!.database(`contract_${++databases}`), { firstStage: 'exact' }) });
}

beforeAll(async () => {
  if (postgresBin) pgServer = await startPostgres();
}, 60_000);
afterAll(async () => {
  await Promise.all(pgStores.map((s) => s.close()));
  pgServer?.destroy();
});

describe.each(backends)('the store contract on $name', (backend) => {
  it('creates, finds, lists and deletes collections; a name is unique', () => {
    const { store } = backend.open();
    const b = store.createCollection('b', 'fp', 32).collection;
    const a = store.createCollection('a', 'fp', 32, { codeBits: 16 }).collection;
    expect(a.id).toBeGreaterThan(b.id);
    expect(store.getCollection('a')).toMatchObject({ name: 'a', fingerprint: 'fp', dimension: 32, code_bits: 16, document_count: 0, generation: 0, reencode_target: null });
    expect(store.getCollection('b')?.code_bits).toBeNull();
    expect(store.listCollections().map((c) => c.name)).toEqual(['a', 'b']);
    expect(() => store.createCollection('a', 'fp', 32)).toThrow(expect.objectContaining({ code: 'QEMBED_COLLECTION_EXISTS' }) as QembedError);
    expect(store.deleteCollection(a.id).existed).toBe(true);
    expect(store.deleteCollection(a.id).existed).toBe(false);
    expect(store.getCollectionById(a.id)).toBeUndefined();
    // Ids are never reused.
    expect(store.createCollection('a', 'fp', 32).collection.id).toBeGreaterThan(a.id);
  });

  it('writes batches: an existing id keeps its rowid, new rowids increase, counters follow the rows', () => {
    const { store } = backend.open();
    const c = store.createCollection('c', 'fp', 32).collection;
    const first = store.writeBatch(c.id, [doc('x'), doc('y'), doc('z')], []).rowids;
    expect(first[1]).toBeGreaterThan(first[0]!);
    expect(first[2]).toBeGreaterThan(first[1]!);
    const again = store.writeBatch(c.id, [doc('new'), doc('y', { k: 1 }, 'changed')], []).rowids;
    expect(again[1]).toBe(first[1]);
    expect(again[0]).toBeGreaterThan(first[2]!);
    expect(store.getDocument(c.id, 'y')).toMatchObject({ rowid: first[1], docId: 'y', text: 'changed', metadata: '{"k":1}' });
    const counted = store.getCollectionById(c.id)!;
    expect({ documents: counted.document_count, payloadBytes: counted.payload_bytes }).toEqual(store.recount(c.id));
    expect(counted.document_count).toBe(4);
    expect(counted.generation).toBe(2);
    expect([...store.digests(c.id, ['x', 'y', 'missing']).keys()].sort()).toEqual(['x', 'y']);
    // Metadata only: applied when the text is still the planned one, else nothing is written.
    store.writeBatch(c.id, [], [{ docId: 'x', metadata: '{"m":true}', expectedTextSha256: doc('x').textSha256 }]);
    expect(store.getDocument(c.id, 'x')?.metadata).toBe('{"m":true}');
    expect(() => store.writeBatch(c.id, [doc('w')], [{ docId: 'x', metadata: '{}', expectedTextSha256: 'f'.repeat(64) }])).toThrow(StaleWriteError);
    expect(store.getDocument(c.id, 'w')).toBeUndefined();
    expect(store.getCollectionById(c.id)!.generation).toBe(2); // metadata-only writes leave the codes alone
    // A batch for a deleted collection is a 404, and writes nothing.
    store.deleteCollection(c.id);
    expect(() => store.writeBatch(c.id, [doc('q')], [])).toThrow(expect.objectContaining({ code: 'QEMBED_COLLECTION_NOT_FOUND' }) as QembedError);
  });

  it('deletes documents, reads codes and documents by rowid in the order asked', () => {
    const { store } = backend.open();
    const c = store.createCollection('c', 'fp', 32).collection;
    const written = [doc('a'), doc('b'), doc('c')];
    const [ra, rb, rc] = store.writeBatch(c.id, written, []).rowids;
    expect(store.deleteDocuments(c.id, ['c', 'nope', 'a'])).toMatchObject({ rowids: [rc, ra], deleted: ['c', 'a'] });
    expect(store.getCollectionById(c.id)!.document_count).toBe(1);
    expect(store.int8Codes([rb!, ra!]).map((b) => b && Array.from(new Int8Array(b.buffer, b.byteOffset, b.length)))).toEqual([Array.from(written[1]!.int8Code), undefined]);
    expect(store.documentsByRowid([ra!, rb!]).map((d) => d?.docId)).toEqual([undefined, 'b']);
    expect([...store.iterateDocuments(c.id)].map((d) => [d.docId, Array.from(d.binaryCode)])).toEqual([['b', Array.from(written[1]!.binaryCode)]]);
    expect(store.countVectorDocuments(c.id)).toBe(0);
    store.writeBatch(c.id, [{ ...doc('v'), text: '', textSha256: `vector:${'0'.repeat(64)}` }], []);
    expect(store.countVectorDocuments(c.id)).toBe(1);
  });

  it('keeps a collection\'s recall target: set at creation, changed, reset, refused out of (0, 1]', () => {
    const { store } = backend.open();
    const a = store.createCollection('a', 'fp', 32, { targetRecall: 0.95 }).collection;
    expect(a.target_recall).toBe(0.95);
    expect(store.createCollection('b', 'fp', 32).collection.target_recall).toBeNull();
    expect(store.setTargetRecall(a.id, 0.999)?.target_recall).toBe(0.999);
    expect(store.getCollection('a')?.target_recall).toBe(0.999);
    expect(store.setTargetRecall(a.id, null)?.target_recall).toBeNull();
    expect(store.setTargetRecall(a.id + 1000, 0.9)).toBeUndefined();
    // The database itself refuses a target outside (0, 1] (the API checks first).
    expect(() => store.setTargetRecall(a.id, 1.5)).toThrow();
    expect(store.getCollection('a')?.target_recall).toBeNull();
  });

  it('reads int8 codes a page at a time in rowid order, of one collection only', () => {
    const { store } = backend.open();
    const c = store.createCollection('c', 'fp', 32).collection;
    const other = store.createCollection('other', 'fp', 32).collection;
    const written = Array.from({ length: 7 }, (_, i) => doc(`d${i}`));
    const rowids: number[] = [];
    // Interleaved with another collection's rows: a page holds this collection's only.
    for (const [i, d] of written.entries()) {
      rowids.push(...store.writeBatch(c.id, [d], []).rowids);
      store.writeBatch(other.id, [doc(`o${i}`)], []);
    }
    store.deleteDocuments(c.id, ['d3']);
    const pages: number[][] = [];
    const codes: number[][] = [];
    for (let after = 0; ; ) {
      const page = store.int8CodePage(c.id, after, 2);
      if (page.rowids.length === 0) break;
      pages.push(page.rowids);
      codes.push(...page.codes.map((b) => Array.from(new Int8Array(b.buffer, b.byteOffset, b.length))));
      after = page.rowids.at(-1)!;
    }
    const live = rowids.filter((_, i) => i !== 3);
    expect(pages).toEqual([live.slice(0, 2), live.slice(2, 4), live.slice(4, 6)]);
    expect(codes).toEqual(written.filter((_, i) => i !== 3).map((d) => Array.from(d.int8Code)));
  });

  it('filters on top-level metadata with JSON types respected, in rowid order', () => {
    const { store } = backend.open();
    const c = store.createCollection('c', 'fp', 32).collection;
    const values: unknown[] = [1, 1.0, 1.5, 0, '1', 'a', true, false, null, [1], { a: 1 }];
    const docs = Array.from({ length: 120 }, (_, i) => doc(`d${i}`, { k: values[i % values.length], n: i % 3, ...(i % 4 === 0 ? { s: 'x y' } : {}) }));
    store.writeBatch(c.id, docs, []);
    store.deleteDocuments(c.id, ['d5', 'd17']);
    const reference = (filter: MetadataFilter) =>
      [...store.iterateDocuments(c.id)]
        .filter((d) => {
          const m = JSON.parse(d.metadata) as Record<string, unknown>;
          return Object.entries(filter).every(([k, v]) => k in m && m[k] === v);
        })
        .map((d) => d.rowid);
    for (const filter of [{ k: 1 }, { k: '1' }, { k: true }, { k: false }, { k: null }, { k: 0 }, { k: 'a', n: 2 }, { s: 'x y' }, { absent: 1 }] as MetadataFilter[]) {
      expect(store.filterRowids(c.id, filter), JSON.stringify(filter)).toEqual(reference(filter));
    }
    expect(store.filterRowids(c.id, { k: 1 }).length).toBeGreaterThan(0);
  });

  it('lists documents a page at a time after a rowid, filtered or not, with their total, across writes and deletes', () => {
    const { store } = backend.open();
    const c = store.createCollection('c', 'fp', 32).collection;
    const other = store.createCollection('other', 'fp', 32).collection;
    const ids = (page: { documents: { docId: string }[] }) => page.documents.map((d) => d.docId);
    expect(store.listDocuments(c.id, { afterRowid: 0, limit: 5 })).toEqual({ documents: [], total: 0 });
    expect(store.listDocuments(c.id, { afterRowid: 0, limit: 5, filter: { n: 1 } })).toEqual({ documents: [], total: 0 });
    // Interleaved with another collection's rows (and matches of the same filter there).
    for (let i = 0; i < 9; i++) {
      store.writeBatch(c.id, [doc(`d${i}`, { n: i % 3, even: i % 2 === 0 })], []);
      store.writeBatch(other.id, [doc(`o${i}`, { n: i % 3 })], []);
    }
    const first = store.listDocuments(c.id, { afterRowid: 0, limit: 4 });
    expect(ids(first)).toEqual(['d0', 'd1', 'd2', 'd3']);
    expect(first.total).toBe(9);
    const stored = store.getDocument(c.id, 'd1')!;
    expect(first.documents[1]).toEqual(stored);
    expect(first.documents[1]).toMatchObject({ text: 'text of d1', metadata: JSON.stringify({ n: 1, even: false }) });
    // Between pages: the next in line and one already listed deleted, a later one rewritten (it
    // keeps its place), a new one written (it comes last).
    store.deleteDocuments(c.id, ['d4', 'd0']);
    store.writeBatch(c.id, [doc('d6', { n: 0, even: true }, 'rewritten'), doc('new', { n: 1 })], []);
    const second = store.listDocuments(c.id, { afterRowid: first.documents.at(-1)!.rowid, limit: 4 });
    expect(ids(second)).toEqual(['d5', 'd6', 'd7', 'd8']);
    expect(second.documents[1]!.text).toBe('rewritten');
    expect(second.total).toBe(8);
    const third = store.listDocuments(c.id, { afterRowid: second.documents.at(-1)!.rowid, limit: 4 });
    expect(third).toMatchObject({ documents: [{ docId: 'new' }], total: 8 });
    expect(store.listDocuments(c.id, { afterRowid: third.documents[0]!.rowid, limit: 4 }).documents).toEqual([]);
    // Filtered: the search filter's matches (JSON types kept), paged; the total counts the matches.
    const n1 = store.listDocuments(c.id, { afterRowid: 0, limit: 2, filter: { n: 1 } });
    expect(ids(n1)).toEqual(['d1', 'd7']);
    expect(n1.total).toBe(3);
    expect(store.listDocuments(c.id, { afterRowid: n1.documents[1]!.rowid, limit: 2, filter: { n: 1 } })).toMatchObject({ documents: [{ docId: 'new' }], total: 3 });
    expect(ids(store.listDocuments(c.id, { afterRowid: 0, limit: 10, filter: { n: 0, even: true } }))).toEqual(['d6']);
    expect(store.listDocuments(c.id, { afterRowid: 0, limit: 10, filter: { n: '1' } })).toEqual({ documents: [], total: 0 });
    expect(store.listDocuments(c.id, { afterRowid: 0, limit: 10, filter: {} }).total).toBe(8);
    // Every filtered page agrees with filterRowids, the search filter's rowids.
    for (const filter of [{ n: 0 }, { n: 2 }, { even: false }, { n: 1, even: false }] as MetadataFilter[]) {
      const listed: number[] = [];
      for (let after = 0; ; ) {
        const page = store.listDocuments(c.id, { afterRowid: after, limit: 1, filter });
        if (page.documents.length === 0) break;
        expect(page.total).toBe(store.filterRowids(c.id, filter).length);
        listed.push(page.documents[0]!.rowid);
        after = page.documents[0]!.rowid;
      }
      expect(listed, JSON.stringify(filter)).toEqual(store.filterRowids(c.id, filter));
    }
  });

  it('keeps the first stage equal to the stored codes: exact top-k, filters, and its entries', () => {
    const { store, firstStage } = backend.open();
    const c = store.createCollection('c', 'fp', 32).collection;
    for (let round = 0; round < 5; round++) {
      store.writeBatch(c.id, Array.from({ length: 40 }, (_, i) => doc(`d${(round * 31 + i) % 90}`)), []);
      store.deleteDocuments(c.id, [`d${round * 7}`, `d${round * 11 + 1}`]);
    }
    const stored = [...store.iterateBinaryCodes(c.id)].map(([rowid, b]) => ({ rowid, code: new Uint8Array(b) }));
    expect([...firstStage.indexEntries(c.id)].map((e) => [e.rowid, Array.from(e.code)])).toEqual(stored.map((s) => [s.rowid, Array.from(s.code)]));
    const q = code();
    const want = stored.map((s) => ({ rowid: s.rowid, d: hamming(s.code, q) })).sort((a, b) => a.d - b.d || a.rowid - b.rowid);
    const got = firstStage.nearest(c.id, hammingQuery(q), 10);
    expect(got.rowids).toEqual(want.slice(0, 10).map((w) => w.rowid));
    expect(got.distances).toEqual(want.slice(0, 10).map((w) => w.d));
    const only = stored.filter((_, i) => i % 3 === 0).map((s) => s.rowid);
    expect(firstStage.nearest(c.id, hammingQuery(q), 5, only).rowids).toEqual(want.filter((w) => only.includes(w.rowid)).slice(0, 5).map((w) => w.rowid));
  });

  it('stages codes of another model and swaps them in at once', () => {
    const { store, firstStage } = backend.open();
    const c = store.createCollection('c', 'old', 32).collection;
    const { rowids } = store.writeBatch(c.id, [doc('a'), doc('b'), doc('c')], []);
    store.beginStaging(c.id, 'new', 32);
    expect(store.getCollectionById(c.id)!.reencode_target).toBe('new');
    expect(store.countPendingReencode(c.id, 'new')).toBe(3);
    const pending = store.pendingReencode(c.id, 'new', 2);
    expect(pending.map((p) => p.rowid)).toEqual(rowids.slice(0, 2));
    expect(store.pendingReencode(c.id, 'new', 10, rowids[1]).map((p) => p.rowid)).toEqual([rowids[2]]);
    const staged = rowids.map((rowid, i) => ({ rowid, textSha256: doc(['a', 'b', 'c'][i]!).textSha256, binaryCode: Uint8Array.of(i, i, i, i), int8Code: new Int8Array(32).fill(i) }));
    store.deleteDocuments(c.id, ['b']);
    expect(store.stageCodes(c.id, 'new', staged).rowids).toEqual([rowids[0], rowids[2]]);
    expect(store.countPendingReencode(c.id, 'new')).toBe(0);
    const generation = store.getCollectionById(c.id)!.generation;
    store.finishReencode(c.id, 'new', 32);
    const after = store.getCollectionById(c.id)!;
    expect(after).toMatchObject({ fingerprint: 'new', reencode_target: null });
    expect(after.generation).toBeGreaterThan(generation);
    expect([...store.iterateBinaryCodes(c.id)].map(([r, b]) => [r, Array.from(b)])).toEqual([
      [rowids[0], [0, 0, 0, 0]],
      [rowids[2], [2, 2, 2, 2]],
    ]);
    expect([...firstStage.indexEntries(c.id)].map((e) => Array.from(e.code))).toEqual([
      [0, 0, 0, 0],
      [2, 2, 2, 2],
    ]);
  });

  it('keeps transforms with a collection, stages a transform\'s codes and swaps them in at once, and goes back to first dims', () => {
    const { store, firstStage } = backend.open();
    const c = store.createCollection('c', 'fp', 32).collection;
    const written = [doc('a'), doc('b'), doc('c'), doc('d')];
    const { rowids } = store.writeBatch(c.id, written, []);
    const t = { collectionId: c.id, fingerprint: 't1', method: 'itq', bits: 32, dimension: 32, mean: new Float32Array(32).fill(0.5), matrix: Float32Array.from({ length: 32 * 32 }, (_, i) => i / 7), summary: '{"a":1}', createdAt: '2026-12-07T00:00:00.000Z' };
    store.saveTransform(t);
    store.saveTransform({ ...t, summary: '{"a":2}' }); // a second save only replaces the summary
    expect(store.getTransform(c.id, 't1')).toEqual({ ...t, summary: '{"a":2}' });
    expect(store.getTransform(c.id, 'nope')).toBeUndefined();
    expect(store.listTransforms(c.id)).toEqual([{ collectionId: c.id, fingerprint: 't1', method: 'itq', bits: 32, dimension: 32, summary: '{"a":2}', createdAt: t.createdAt }]);

    store.beginTransformStaging(c.id, 't1');
    expect(store.getCollectionById(c.id)).toMatchObject({ transform: null, transform_target: 't1' });
    expect(store.countPendingTransformCodes(c.id, 't1')).toBe(4);
    expect(store.pendingTransformCodes(c.id, 't1', 10, rowids[1]!).map((p) => p.rowid)).toEqual(rowids.slice(2));
    const pending = store.pendingTransformCodes(c.id, 't1', 2, 0);
    const bytes = (codes: Int8Array | Uint8Array) => Array.from(new Uint8Array(codes.buffer, codes.byteOffset, codes.byteLength));
    expect(pending.map((p) => [p.rowid, p.textSha256, bytes(p.int8Code)])).toEqual(written.slice(0, 2).map((w, i) => [rowids[i], w.textSha256, bytes(w.int8Code)]));
    const staged = rowids.map((rowid, i) => ({ rowid, textSha256: written[i]!.textSha256, code: Uint8Array.of(i, 0, 0, 1) }));
    store.deleteDocuments(c.id, ['b']);
    expect(store.stageTransformCodes(c.id, 't1', staged).rowids).toEqual([rowids[0], rowids[2], rowids[3]]);
    // A document rewritten with another text must be staged again.
    const rewritten = doc('d', {}, 'another text');
    store.writeBatch(c.id, [rewritten], []);
    expect(store.pendingTransformCodes(c.id, 't1', 10, 0).map((p) => p.rowid)).toEqual([rowids[3]]);
    expect(() => store.finishTransform(c.id, 't1')).toThrow(/no staged codes/);
    store.stageTransformCodes(c.id, 't1', [{ rowid: rowids[3]!, textSha256: rewritten.textSha256, code: Uint8Array.of(9, 0, 0, 1) }]);
    expect([...store.stagedTransformCodes(c.id, 't1')].map(([r, b]) => [r, Array.from(b)])).toEqual([
      [rowids[0], [0, 0, 0, 1]],
      [rowids[2], [2, 0, 0, 1]],
      [rowids[3], [9, 0, 0, 1]],
    ]);
    const generation = store.getCollectionById(c.id)!.generation;
    store.finishTransform(c.id, 't1');
    const after = store.getCollectionById(c.id)!;
    expect(after).toMatchObject({ transform: 't1', transform_target: null });
    expect(after.generation).toBeGreaterThan(generation);
    const served = [
      [rowids[0], [0, 0, 0, 1]],
      [rowids[2], [2, 0, 0, 1]],
      [rowids[3], [9, 0, 0, 1]],
    ];
    expect([...store.iterateBinaryCodes(c.id)].map(([r, b]) => [r, Array.from(b)])).toEqual(served);
    expect([...firstStage.indexEntries(c.id)].map((e) => [e.rowid, Array.from(e.code)])).toEqual(served);
    // The first stage (in memory, or in SQL) ranks the transform's codes.
    expect(firstStage.nearest(c.id, hammingQuery(Uint8Array.of(9, 0, 0, 1)), 1).rowids).toEqual([rowids[3]]);
    expect([...store.iterateDocuments(c.id)].map((d) => d.firstCode && Array.from(d.firstCode))).toEqual(served.map((s) => s[1]));
    // Writes name the codes they were computed for; a write for other codes changes nothing.
    const planned = { ...doc('e'), firstCode: Uint8Array.of(7, 7, 7, 7) };
    expect(() => store.writeBatch(c.id, [planned], [], { fingerprint: 'fp', transform: null })).toThrow(StaleWriteError);
    expect(() => store.writeBatch(c.id, [planned], [], { fingerprint: 'other', transform: 't1' })).toThrow(StaleWriteError);
    expect(store.getDocument(c.id, 'e')).toBeUndefined();
    const e = store.writeBatch(c.id, [planned], [], { fingerprint: 'fp', transform: 't1' }).rowids[0]!;
    expect([...firstStage.indexEntries(c.id)].at(-1)).toEqual({ rowid: e, code: Uint8Array.of(7, 7, 7, 7) });

    // Another candidate staged, then abandoned: nothing served changes.
    store.saveTransform({ ...t, fingerprint: 't2' });
    store.beginTransformStaging(c.id, 't2');
    store.stageTransformCodes(c.id, 't2', [{ rowid: rowids[0]!, textSha256: written[0]!.textSha256, code: Uint8Array.of(5, 5, 5, 5) }]);
    store.abandonTransform(c.id);
    expect(store.getCollectionById(c.id)).toMatchObject({ transform: 't1', transform_target: null });
    expect([...store.stagedTransformCodes(c.id, 't2')]).toEqual([]);

    // Back to first dims: the model's binary codes again, without staging.
    store.finishTransform(c.id, null);
    expect(store.getCollectionById(c.id)).toMatchObject({ transform: null, transform_target: null });
    expect([...store.iterateBinaryCodes(c.id)].map(([, b]) => Array.from(b))).toEqual([written[0]!, written[2]!, rewritten, planned].map((w) => Array.from(w.binaryCode)));
    expect([...firstStage.indexEntries(c.id)].map((x) => Array.from(x.code))).toEqual([written[0]!, written[2]!, rewritten, planned].map((w) => Array.from(w.binaryCode)));

    // A re-encoding's swap drops the transforms: they were fitted in the old model's space.
    store.beginTransformStaging(c.id, 't1');
    store.beginStaging(c.id, 'new', 32);
    store.stageCodes(
      c.id,
      'new',
      [...store.iterateDocuments(c.id)].map((d) => ({ rowid: d.rowid, textSha256: d.textSha256, binaryCode: Uint8Array.of(1, 1, 1, 1), int8Code: new Int8Array(32) })),
    );
    store.finishReencode(c.id, 'new', 32);
    expect(store.getCollectionById(c.id)).toMatchObject({ fingerprint: 'new', transform: null, transform_target: null });
    expect(store.listTransforms(c.id)).toEqual([]);
  });

  it('returns what each write changed of the codes, for the first stage', () => {
    const { raw: store } = backend.open();
    const created = store.createCollection('c', 'fp', 32);
    const c = created.collection;
    expect(created.changes).toEqual([{ type: 'created', collection: c }]);
    const written = [doc('a'), doc('b')];
    const w = store.writeBatch(c.id, written, []);
    expect(w.changes).toEqual([{ type: 'written', collectionId: c.id, entries: w.rowids.map((rowid, i) => ({ rowid, code: written[i]!.binaryCode })) }]);
    // Metadata only: no code changed.
    expect(store.writeBatch(c.id, [], [{ docId: 'a', metadata: '{"m":1}', expectedTextSha256: written[0]!.textSha256 }]).changes).toEqual([]);
    expect(store.deleteDocuments(c.id, ['b', 'nope']).changes).toEqual([{ type: 'deleted', collectionId: c.id, rowids: [w.rowids[1]] }]);
    expect(store.deleteDocuments(c.id, ['nope']).changes).toEqual([]);
    expect(store.beginStaging(c.id, 'new', 32).changes).toEqual([{ type: 'staging', collectionId: c.id, fingerprint: 'new' }]);
    const staged = { rowid: w.rowids[0]!, textSha256: written[0]!.textSha256, binaryCode: Uint8Array.of(1, 2, 3, 4), int8Code: new Int8Array(32) };
    expect(store.stageCodes(c.id, 'new', [staged]).changes).toEqual([{ type: 'staged', collectionId: c.id, entries: [{ rowid: staged.rowid, code: staged.binaryCode }] }]);
    expect(store.finishReencode(c.id, 'new', 32).changes).toEqual([{ type: 'swapped', collectionId: c.id }]);
    expect(store.deleteCollection(c.id).changes).toEqual([{ type: 'dropped', collectionId: c.id }]);
  });

  it('keeps settings, and answers the health probe', () => {
    const { store } = backend.open();
    expect(store.getMeta('k')).toBeUndefined();
    store.setMeta('k', 'v1');
    store.setMeta('k', 'v2');
    expect(store.getMeta('k')).toBe('v2');
    store.probeWritable();
    expect(store.storageStatus().full).toBe(false);
    expect(store.databaseBytes()).toBeGreaterThan(0);
  });
});

// Several API processes on one database: two stores, each with its own connection and first stage.
describe.runIf(postgresBin)('PostgreSQL shared by several processes', () => {
  const postgres = backends.find((b) => b.reopen)!;
  const entries = (o: Opened, collectionId: number) => [...o.firstStage.indexEntries(collectionId)].map((e) => [e.rowid, Array.from(e.code)]);
  it('shows a write acknowledged by one process to the next search of another (immediately)', () => {
    const a = postgres.open();
    const b = postgres.reopen!(a);
    const c = a.store.createCollection('c', 'fp', 32).collection;
    expect(b.firstStage.nearest(c.id, hammingQuery(code()), 5).rowids).toEqual([]);
    for (let round = 0; round < 6; round++) {
      // Both write, interleaved: each index must equal the rows after every step.
      const [writer, other] = round % 2 ? [a, b] : [b, a];
      writer.store.writeBatch(c.id, Array.from({ length: 15 }, (_, i) => doc(`r${round}-${i}`)), []);
      writer.store.writeBatch(c.id, [doc(`r0-${round}`, {}, `rewritten ${round}`)], []);
      other.store.deleteDocuments(c.id, [`r${round}-3`]);
      const rows = [...a.store.iterateBinaryCodes(c.id)].map(([r, code]) => [r, Array.from(code)]);
      for (const opened of [a, b]) {
        expect(entries(opened, c.id)).toEqual(rows);
        const q = code();
        const best = opened.firstStage.nearest(c.id, hammingQuery(q), 3);
        expect(best.distances[0]).toBe(Math.min(...rows.map(([, code]) => hamming(Uint8Array.from(code as number[]), q))));
      }
    }
    // A re-encoding swapped in by one process: the other loads the collection again.
    a.store.beginStaging(c.id, 'new', 32);
    const pending = a.store.pendingReencode(c.id, 'new', 1000);
    a.store.stageCodes(c.id, 'new', pending.map((p) => ({ rowid: p.rowid, textSha256: p.textSha256, binaryCode: Uint8Array.of(9, 9, 9, 9), int8Code: new Int8Array(32) })));
    a.store.finishReencode(c.id, 'new', 32);
    expect(new Set([...b.firstStage.indexEntries(c.id)].map((e) => Array.from(e.code).join()))).toEqual(new Set(['9,9,9,9']));
  });

  it('gives a write the changes of other processes before its own, once, in commit order', () => {
    const a = postgres.open();
    const b = postgres.reopen!(a);
    const c = a.store.createCollection('c', 'fp', 32).collection;
    const fromB = b.raw.writeBatch(c.id, [doc('b1'), doc('b2')], []);
    b.raw.deleteDocuments(c.id, ['b1']);
    const fromA = a.raw.writeBatch(c.id, [doc('a1')], []);
    // b1 was deleted before A's write read its code: only its deletion is given.
    expect(fromA.changes.map((ch) => [ch.type, 'entries' in ch ? ch.entries.map((e) => e.rowid) : 'rowids' in ch ? ch.rowids : []])).toEqual([
      ['written', [fromB.rowids[1]]],
      ['deleted', [fromB.rowids[0]]],
      ['written', fromA.rowids],
    ]);
    // Given out once: neither the next write nor a search sees them again.
    expect(a.raw.othersChanges!()).toEqual([]);
    expect(a.raw.deleteDocuments(c.id, ['a1']).changes).toEqual([{ type: 'deleted', collectionId: c.id, rowids: fromA.rowids }]);
  });

  it('prunes old changes, and a process that had not read them loads its indexes again', () => {
    const writer = postgres.open();
    const pruning = postgres.reopen!(writer, { keepChanges: 3, pruneEvery: 1 });
    const idle = postgres.reopen!(writer);
    const c = writer.store.createCollection('c', 'fp', 32).collection;
    pruning.store.writeBatch(c.id, [doc('first')], []);
    expect(idle.firstStage.nearest(c.id, hammingQuery(code()), 5).rowids).toHaveLength(1); // its index is loaded
    for (let i = 0; i < 8; i++) {
      pruning.store.writeBatch(c.id, [doc(`p${i}`), doc(`q${i}`)], []);
      pruning.store.deleteDocuments(c.id, [`q${i}`]);
    }
    const rows = [...writer.store.iterateBinaryCodes(c.id)].map(([r, b]) => [r, Array.from(b)]);
    expect(rows).toHaveLength(9);
    for (const opened of [idle, writer, pruning]) {
      expect(opened.firstStage.nearest(c.id, hammingQuery(code()), 20).rowids).toHaveLength(9);
      expect(entries(opened, c.id)).toEqual(rows);
    }
  });
});
