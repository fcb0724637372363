/**
 * Metadata filters are answered from the metadata_values index (migrations/006), kept by
 * triggers: after any mix of inserts, upserts that change metadata, metadata-only writes and
 * deletes, the rowids a filter returns must be exactly those a plain evaluation of every
 * document's JSON gives (JSON types respected: 1 = 1.0, "1" ≠ 1, true ≠ 1, null is a value,
 * arrays and objects never match); and a database written before the index existed gets it
 * filled when the migration runs.
 */
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { migrationsDir } from '../../src/paths.js';
import { openDatabase } from '../../src/store/database.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { DocumentWrite, MetadataFilter, Store } from '../../src/store/store.js';
import { xorshift32 } from '../helpers/random.js';

const work = mkdtempSync(path.join(tmpdir(), 'qembed-filters-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const next = xorshift32(5);
const pick = <T>(items: readonly T[]): T => items[next() % items.length]!;
// Values chosen to collide across JSON types.
const VALUES: unknown[] = [1, 1.0, 1.5, 0, '1', 'a', 'b', true, false, null, [1], { a: 1 }];
const KEYS = ['k', 'lang', 'n', 'x y'];

function randomMetadata(): Record<string, unknown> {
  const m: Record<string, unknown> = {};
  for (const key of KEYS) if (next() % 3 !== 0) m[key] = pick(VALUES);
  return m;
}

const doc = (id: string, metadata: Record<string, unknown>): DocumentWrite => ({
  docId: id,
  text: `text of ${id}`,
  metadata: JSON.stringify(metadata),
  textSha256: id.padStart(64, '0'),
  binaryCode: Uint8Array.from({ length: 4 }, () => next() & 255),
  int8Code: Int8Array.from({ length: 32 }, () => (next() & 255) - 128),
});

/** The reference: every document's JSON, evaluated in JavaScript. */
function expected(store: Store, collectionId: number, filter: MetadataFilter): number[] {
  return [...store.iterateDocuments(collectionId)]
    .filter((d) => {
      const m = JSON.parse(d.metadata) as Record<string, unknown>;
      return Object.entries(filter).every(([k, v]) => k in m && m[k] === v);
    })
    .map((d) => d.rowid);
}

const FILTERS: MetadataFilter[] = [
  { k: 1 },
  { k: '1' },
  { k: true },
  { k: false },
  { k: 0 },
  { k: null },
  { lang: 'a' },
  { lang: 'a', n: 1 },
  { 'x y': 1.5, k: 'b', n: null },
  { absent: 1 },
];

describe('metadata filters from the metadata_values index', () => {
  it('match a plain evaluation of the JSON after inserts, upserts, metadata-only writes and deletes', () => {
    const store = createSqliteStore(openDatabase({ file: ':memory:' }));
    const a = store.createCollection('a', 'f', 32).collection;
    const b = store.createCollection('b', 'f', 32).collection;
    const live = new Map<string, string>(); // doc id → stored text hash
    for (let round = 0; round < 20; round++) {
      const writes = Array.from({ length: 40 }, () => doc(`d${next() % 150}`, randomMetadata()));
      const unique = [...new Map(writes.map((w) => [w.docId, w])).values()];
      store.writeBatch(a.id, unique, []);
      for (const w of unique) live.set(w.docId, w.textSha256);
      store.writeBatch(b.id, unique.slice(0, 5), []); // same ids in another collection: kept apart
      const ids = [...live.keys()];
      const metadataOnly = ids.slice(0, 10).map((id) => ({ docId: id, metadata: JSON.stringify(randomMetadata()), expectedTextSha256: live.get(id)! }));
      store.writeBatch(a.id, [], metadataOnly);
      const gone = ids.filter(() => next() % 8 === 0);
      store.deleteDocuments(a.id, gone);
      for (const id of gone) live.delete(id);
      for (const filter of FILTERS) {
        expect(store.filterRowids(a.id, filter), JSON.stringify(filter)).toEqual(expected(store, a.id, filter));
        expect(store.filterRowids(b.id, filter), JSON.stringify(filter)).toEqual(expected(store, b.id, filter));
      }
    }
    expect(store.filterRowids(a.id, { k: 1 }).length).toBeGreaterThan(0);
    expect(store.filterRowids(a.id, {})).toEqual([...store.iterateDocuments(a.id)].map((d) => d.rowid));
    // Deleting a collection takes its index rows with it.
    store.deleteCollection(a.id);
    const c = store.createCollection('a', 'f', 32).collection;
    expect(store.filterRowids(c.id, { k: 1 })).toEqual([]);
  });

  it('are filled for the documents a database held before the index existed', () => {
    const before = path.join(work, 'migrations-005');
    cpSync(migrationsDir, before, { recursive: true });
    // Without 006 (the metadata index); the later ones stay, as today's store writes their columns.
    for (const f of readdirSync(before)) if (/^006-/.test(f)) rmSync(path.join(before, f));
    const file = path.join(work, 'old.sqlite');
    const old = openDatabase({ file, migrationsDir: before });
    const oldStore = createSqliteStore(old);
    const c = oldStore.createCollection('c', 'f', 32).collection;
    oldStore.writeBatch(c.id, Array.from({ length: 60 }, (_, i) => doc(`d${i}`, randomMetadata())), []);
    old.close();
    const store = createSqliteStore(openDatabase({ file }));
    for (const filter of FILTERS) expect(store.filterRowids(c.id, filter), JSON.stringify(filter)).toEqual(expected(store, c.id, filter));
    expect(store.filterRowids(c.id, { lang: 'a' }).length).toBeGreaterThan(0);
  });
});
