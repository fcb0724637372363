/**
 * One in-memory binary index per collection (binary-index.ts), and one more for the codes
 * staged while a collection is re-encoded: the first stage of the SQLite store. An index is
 * loaded from the rows on first use and then kept in step by the store's writes, each applied
 * right after its transaction commits (room reserved before, so applying cannot fail). An index
 * holds the first codeBitsOf(collection) bits of each code: a compact first stage takes that
 * much memory and scan time, while the stored codes stay full length.
 */
import { type CollectionRow, codeBitsOf, type FirstStage } from '../store/store.js';
import { type BinaryIndex, createBinaryIndex } from './binary-index.js';
import { readSnapshot, type SnapshotKey, writeSnapshot } from './snapshot.js';

/** Where indexes are loaded from. */
export interface CodeSource {
  collection(id: number): CollectionRow | undefined;
  collections(): CollectionRow[];
  /** (rowid, binary code) pairs in rowid order. */
  codes(collectionId: number): Iterable<[number, Uint8Array]>;
  stagedCodes(collectionId: number, fingerprint: string): Iterable<[number, Uint8Array]>;
  /** Where snapshots of the indexes live (snapshot.ts); none for an in-memory database. */
  snapshotDir?: string;
}

export interface IndexRegistry extends FirstStage {
  created(c: CollectionRow): void;
  dropped(collectionId: number): void;
  /** Before a write of `additional` documents; then `written` after its commit. */
  reserve(collectionId: number, additional: number): void;
  written(collectionId: number, rows: readonly { rowid: number; code: Uint8Array }[]): void;
  removed(collectionId: number, rowids: readonly number[]): void;
  beginStaging(collectionId: number, fingerprint: string, dimension: number): void;
  reserveStaged(collectionId: number, additional: number): void;
  staged(collectionId: number, rows: readonly { rowid: number; code: Uint8Array }[]): void;
  /** The staged codes became the collection's codes. */
  swapStaged(collectionId: number): void;
  /** The rowids of `rowids` the collection's index holds (loading it first if needed). */
  present(collectionId: number, rowids: readonly number[]): number[];
}

/** The pairs with each code cut to its first `bytes` bytes (a view, nothing copied). */
function* prefixes(pairs: Iterable<[number, Uint8Array]>, bytes: number): Iterable<[number, Uint8Array]> {
  for (const [rowid, code] of pairs) yield [rowid, code.subarray(0, bytes)];
}

export function createIndexRegistry(source: CodeSource): IndexRegistry {
  const indexes = new Map<number, BinaryIndex>();
  const fromSnapshot = new Set<number>();
  const staging = new Map<number, BinaryIndex>();
  const codeBytes = (collectionId: number): number => {
    const c = source.collection(collectionId);
    if (!c) throw new Error(`collection ${collectionId} does not exist`);
    return codeBitsOf(c) / 8;
  };
  const upsertAll = (index: BinaryIndex | undefined, rows: readonly { rowid: number; code: Uint8Array }[]) => {
    if (index) for (const r of rows) index.upsert(r.rowid, r.code.subarray(0, index.codeBytes));
  };

  const keyOf = (c: CollectionRow): SnapshotKey => ({ collectionId: c.id, generation: c.generation, codeBytes: codeBitsOf(c) / 8, count: c.document_count });
  const save = (c: CollectionRow, index: BinaryIndex) => {
    if (source.snapshotDir && index.size() === c.document_count) writeSnapshot(source.snapshotDir, keyOf(c), index.packed());
  };

  /** From its snapshot when that is exactly this state of the collection, else from the rows (and then snapshotted). */
  const load = (c: CollectionRow): BinaryIndex => {
    let index = indexes.get(c.id);
    if (!index) {
      const bytes = codeBitsOf(c) / 8;
      const snapshot = source.snapshotDir ? readSnapshot(source.snapshotDir, keyOf(c)) : undefined;
      if (snapshot) {
        index = createBinaryIndex(bytes, 0, [], snapshot);
        fromSnapshot.add(c.id);
      } else {
        index = createBinaryIndex(bytes, c.document_count, prefixes(source.codes(c.id), bytes));
        save(c, index);
      }
      indexes.set(c.id, index);
    }
    return index;
  };
  const indexOf = (collectionId: number): BinaryIndex => {
    const loaded = indexes.get(collectionId);
    if (loaded) return loaded;
    const c = source.collection(collectionId);
    if (!c) throw new Error(`collection ${collectionId} does not exist`);
    return load(c);
  };

  return {
    loadIndexes: () => source.collections().reduce((total, c) => total + load(c).size(), 0),
    nearest(collectionId, query, k, rowids, planes) {
      const index = indexOf(collectionId);
      if (index.size() === 0 || rowids?.length === 0) return { rowids: [], distances: [], scanned: rowids ? 0 : index.size() };
      return index.search(query, k, rowids, planes);
    },
    indexStats(collectionId) {
      const index = indexes.get(collectionId);
      return index
        ? { documents: index.size(), slots: index.slots(), tombstones: index.tombstones(), memoryBytes: index.memoryBytes(), loadedFrom: fromSnapshot.has(collectionId) ? 'snapshot' : 'database' }
        : null;
    },
    indexEntries: (collectionId) => indexOf(collectionId).entries(),
    present(collectionId, rowids) {
      const index = indexOf(collectionId);
      return rowids.filter((r) => index.has(r));
    },
    persistFirstStage() {
      for (const [id, index] of indexes) {
        const c = source.collection(id);
        if (c && c.reencode_target === null) save(c, index);
      }
    },

    created: (c) => void indexes.set(c.id, createBinaryIndex(codeBitsOf(c) / 8)),
    dropped(collectionId) {
      indexes.get(collectionId)?.release();
      staging.get(collectionId)?.release();
      indexes.delete(collectionId);
      staging.delete(collectionId);
    },
    reserve: (collectionId, additional) => indexes.get(collectionId)?.reserve(additional),
    written: (collectionId, rows) => upsertAll(indexes.get(collectionId), rows),
    removed(collectionId, rowids) {
      for (const index of [indexes.get(collectionId), staging.get(collectionId)]) if (index) for (const rowid of rowids) index.remove(rowid);
    },
    // The new model's codes are cut to the collection's code length too (re-encoding keeps it).
    beginStaging(collectionId, fingerprint) {
      const bytes = codeBytes(collectionId);
      const count = source.collection(collectionId)?.document_count ?? 0;
      staging.set(collectionId, createBinaryIndex(bytes, count, prefixes(source.stagedCodes(collectionId, fingerprint), bytes)));
    },
    reserveStaged: (collectionId, additional) => staging.get(collectionId)?.reserve(additional),
    // Staged rows come in rowid order, so new documents append in order; a rowid deleted
    // meanwhile was not staged (and never comes back: rowids are not reused).
    staged: (collectionId, rows) => upsertAll(staging.get(collectionId), rows),
    swapStaged(collectionId) {
      const index = staging.get(collectionId);
      staging.delete(collectionId);
      indexes.get(collectionId)?.release();
      if (index) indexes.set(collectionId, index);
      else indexes.delete(collectionId); // loaded again from the swapped rows when next needed
    },
  };
}
