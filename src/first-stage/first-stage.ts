/**
 * The first stage of every collection, for every storage backend: one in-memory binary index
 * per collection (binary-index.ts), and one more for the codes staged while a collection is
 * re-encoded. An index is loaded at first use, from its snapshot when that is exactly the
 * collection's state (snapshot.ts) or else from the rows, and is then kept in step by the
 * changes storage returns from each write (store.ts: CodeChange), applied right after the
 * commit in the same tick (in-step.ts); a write that adds codes reserves room first, so that
 * applying it cannot fail.
 *
 * On a database several processes write (PostgreSQL), what the others committed is applied
 * before each search (othersChanges) and with each write of this process (its changes start
 * with them), in commit order. Where the database computes the Hamming first stage itself
 * (QEMBED_PG_FIRST_STAGE exact or hnsw), Hamming queries go there and an index is only loaded
 * for an asymmetric query.
 *
 * An index holds the first codeBitsOf(collection) bits of each code: a compact first stage takes
 * that much memory and scan time, while the stored codes stay full length.
 */
import { type Changed, type CodeChange, type CodeEntry, type CollectionRow, codeBitsOf, type FirstStageResult, type Store } from '../store/store.js';
import { type BinaryIndex, createBinaryIndex } from './binary-index.js';
import type { FirstStageQuery } from './query.js';
import { readSnapshot, type SnapshotKey, writeSnapshot } from './snapshot.js';

export interface IndexStats {
  /** Live documents. */
  documents: number;
  /** Slots in use, tombstones included. */
  slots: number;
  tombstones: number;
  memoryBytes: number;
  /** Where the index was loaded from at first use: a snapshot, or the rows (created empty: 'database'). */
  loadedFrom: 'snapshot' | 'database';
}

/** What the first stage reads of storage: the collections, their codes, and what the backend offers it (FirstStageSupport). */
export type FirstStageStore = Pick<
  Store,
  'getCollectionById' | 'listCollections' | 'iterateBinaryCodes' | 'stagedBinaryCodes' | 'stagedTransformCodes' | 'othersChanges' | 'snapshotDir' | 'nearestInDatabase'
>;

export interface FirstStageIndex {
  /** Loads every collection's index now (at start, to fail fast); returns the documents indexed. */
  loadIndexes(): number;
  /**
   * The top k by the query's distance (query.ts) over the collection's documents, or over
   * `rowids` (ascending: a metadata filter's matches). The query is of the collection's code
   * length (codeBitsOf).
   */
  nearest(collectionId: number, query: FirstStageQuery, k: number, rowids?: readonly number[]): FirstStageResult;
  /**
   * The same over the codes staged for the collection (a transform switch measures the recall
   * of its candidate codes before it swaps them in); throws when nothing is staged.
   */
  nearestStaged(collectionId: number, query: FirstStageQuery, k: number): FirstStageResult;
  /** Size of the collection's index; null while it is not loaded. */
  indexStats(collectionId: number): IndexStats | null;
  /** The indexed (rowid, code of the collection's code length) pairs in rowid order (the consistency check). */
  indexEntries(collectionId: number): IterableIterator<CodeEntry>;
  /** Saves what makes the next start fast (snapshots of the loaded indexes, where storage has a place for them); at shutdown. */
  persist(): void;
  /** Makes room for `additional` codes in the collection's index (or its staging index) before a write commits them. */
  reserve(collectionId: number, additional: number, into?: 'index' | 'staging'): void;
  /** Applies a committed write's changes in order, in this tick; returns the write's answer. */
  apply<T extends Changed>(written: T): T;
}

/** The pairs with each code cut to its first `bytes` bytes (a view, nothing copied). */
function* prefixes(pairs: Iterable<[number, Uint8Array]>, bytes: number): Iterable<[number, Uint8Array]> {
  for (const [rowid, code] of pairs) yield [rowid, code.subarray(0, bytes)];
}

export function createFirstStageIndex(store: FirstStageStore): FirstStageIndex {
  const indexes = new Map<number, BinaryIndex>();
  const fromSnapshot = new Set<number>();
  const staging = new Map<number, BinaryIndex>();
  const { snapshotDir, nearestInDatabase } = store;
  const shared = store.othersChanges !== undefined;

  const collection = (collectionId: number): CollectionRow => {
    const c = store.getCollectionById(collectionId);
    if (!c) throw new Error(`collection ${collectionId} does not exist`);
    return c;
  };
  const upsertAll = (index: BinaryIndex | undefined, entries: readonly CodeEntry[]) => {
    if (index) for (const e of entries) index.upsert(e.rowid, e.code.subarray(0, index.codeBytes));
  };

  const keyOf = (c: CollectionRow): SnapshotKey => ({ collectionId: c.id, generation: c.generation, codeBytes: codeBitsOf(c) / 8, count: c.document_count });
  const save = (c: CollectionRow, index: BinaryIndex) => {
    if (snapshotDir && index.size() === c.document_count) writeSnapshot(snapshotDir, keyOf(c), index.packed());
  };

  /** From its snapshot when that is exactly this state of the collection, else from the rows (and then snapshotted). */
  const load = (c: CollectionRow): BinaryIndex => {
    let index = indexes.get(c.id);
    if (!index) {
      const bytes = codeBitsOf(c) / 8;
      const snapshot = snapshotDir ? readSnapshot(snapshotDir, keyOf(c)) : undefined;
      if (snapshot) {
        index = createBinaryIndex(bytes, 0, [], snapshot);
        fromSnapshot.add(c.id);
      } else {
        index = createBinaryIndex(bytes, c.document_count, prefixes(store.iterateBinaryCodes(c.id), bytes));
        save(c, index);
      }
      indexes.set(c.id, index);
    }
    return index;
  };
  const indexOf = (collectionId: number): BinaryIndex => indexes.get(collectionId) ?? load(collection(collectionId));

  function applyChange(change: CodeChange): void {
    switch (change.type) {
      case 'created':
        // With the Hamming first stage in the database, an index is loaded only for an asymmetric query.
        if (!nearestInDatabase) indexes.set(change.collection.id, createBinaryIndex(codeBitsOf(change.collection) / 8));
        return;
      case 'dropped':
        for (const held of [indexes, staging]) {
          held.get(change.collectionId)?.release();
          held.delete(change.collectionId);
        }
        return;
      case 'written':
        return upsertAll(indexes.get(change.collectionId), change.entries);
      case 'deleted':
        for (const index of [indexes.get(change.collectionId), staging.get(change.collectionId)]) if (index) for (const rowid of change.rowids) index.remove(rowid);
        return;
      case 'staging': {
        // The new model's codes are cut to the collection's code length too (re-encoding keeps
        // it); a transform's codes are of that length.
        const c = collection(change.collectionId);
        const bytes = codeBitsOf(c) / 8;
        const staged = change.transform ? store.stagedTransformCodes(c.id, change.fingerprint) : store.stagedBinaryCodes(c.id, change.fingerprint);
        staging.get(c.id)?.release();
        staging.set(c.id, createBinaryIndex(bytes, c.document_count, prefixes(staged, bytes)));
        return;
      }
      case 'unstaged':
        staging.get(change.collectionId)?.release();
        staging.delete(change.collectionId);
        return;
      case 'staged':
        // Staged rows come in rowid order, so new documents append in order; a rowid deleted
        // meanwhile was not staged (and never comes back: rowids are not reused).
        return upsertAll(staging.get(change.collectionId), change.entries);
      case 'swapped': {
        const index = staging.get(change.collectionId);
        staging.delete(change.collectionId);
        indexes.get(change.collectionId)?.release();
        if (index) indexes.set(change.collectionId, index);
        else indexes.delete(change.collectionId); // loaded again from the swapped rows when next needed
        return;
      }
    }
  }

  /** What other processes committed since this one last looked (a shared database only). */
  const catchUp = () => {
    for (const change of store.othersChanges?.() ?? []) applyChange(change);
  };

  return {
    loadIndexes() {
      if (nearestInDatabase) return store.listCollections().reduce((n, c) => n + c.document_count, 0);
      catchUp();
      return store.listCollections().reduce((total, c) => total + load(c).size(), 0);
    },
    nearest(collectionId, query, k, rowids) {
      if (nearestInDatabase && query.type === 'hamming') return nearestInDatabase(collectionId, query.code, k, rowids);
      catchUp();
      const index = indexOf(collectionId);
      // On a shared database a filter's rowids were read before this catch-up: another process may have deleted some since.
      const only = shared && rowids ? rowids.filter((r) => index.has(r)) : rowids;
      if (index.size() === 0 || only?.length === 0) return { rowids: [], distances: [], scanned: only ? 0 : index.size() };
      return index.search(query, k, only);
    },
    nearestStaged(collectionId, query, k) {
      catchUp();
      const index = staging.get(collectionId);
      if (!index) throw new Error(`collection ${collectionId} has no staged codes`);
      return index.size() === 0 ? { rowids: [], distances: [], scanned: 0 } : index.search(query, k);
    },
    indexStats(collectionId) {
      const index = indexes.get(collectionId);
      return index
        ? { documents: index.size(), slots: index.slots(), tombstones: index.tombstones(), memoryBytes: index.memoryBytes(), loadedFrom: fromSnapshot.has(collectionId) ? 'snapshot' : 'database' }
        : null;
    },
    indexEntries(collectionId) {
      catchUp();
      return indexOf(collectionId).entries();
    },
    persist() {
      for (const [id, index] of indexes) {
        const c = store.getCollectionById(id);
        if (c && c.reencode_target === null) save(c, index);
      }
    },
    reserve: (collectionId, additional, into = 'index') => (into === 'staging' ? staging : indexes).get(collectionId)?.reserve(additional),
    apply(written) {
      for (const change of written.changes) applyChange(change);
      return written;
    },
  };
}
