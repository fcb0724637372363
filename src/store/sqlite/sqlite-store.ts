/**
 * The SQLite implementation of `Store`: its repositories over one better-sqlite3 database.
 * Every call is synchronous and short (better-sqlite3 blocks the event loop); statements are
 * prepared once; every write goes through the storage guard (a full disk is a 507, storage.ts).
 * The first stage is an in-memory index per collection (memory-index/), kept in step here.
 */
import path from 'node:path';
import { type Db, probeWritable } from '../database.js';
import { storageGuard } from '../storage.js';
import type { Store } from '../store.js';
import { createIndexRegistry } from '../../first-stage/index-registry.js';
import { createCollectionRepository } from './collections.js';
import { createDocumentRepository } from './documents.js';
import { createMetaRepository } from './meta.js';
import { createReencodeStaging } from './reencode-staging.js';

export function createSqliteStore(db: Db): Store {
  const storage = storageGuard(db);
  const pages = db.prepare('SELECT page_count * page_size AS bytes FROM pragma_page_count(), pragma_page_size()');
  const collections = createCollectionRepository(db, storage);
  const documents = createDocumentRepository(db, storage);
  const { stagedBinaryCodes, ...staging } = createReencodeStaging(db, storage);
  const indexes = createIndexRegistry({
    collection: collections.getCollectionById,
    collections: collections.listCollections,
    codes: documents.iterateBinaryCodes,
    stagedCodes: stagedBinaryCodes,
    // Beside the database file: its snapshots are only valid for it.
    snapshotDir: db.memory ? undefined : path.join(path.dirname(db.name), 'index-snapshots'),
  });
  const { loadIndexes, nearest, indexStats, indexEntries, persistFirstStage } = indexes;
  return {
    ...collections,
    ...documents,
    ...staging,
    ...createMetaRepository(db, storage),
    loadIndexes,
    nearest,
    indexStats,
    indexEntries,
    persistFirstStage,
    // Writes that change codes keep the first stage in step: room before the commit, the
    // change right after it, in the same tick.
    createCollection(name, fingerprint, dimension, codeBits) {
      const c = collections.createCollection(name, fingerprint, dimension, codeBits);
      indexes.created(c);
      return c;
    },
    deleteCollection(id) {
      const deleted = collections.deleteCollection(id);
      indexes.dropped(id);
      return deleted;
    },
    writeBatch(collectionId, written, metadataOnly) {
      indexes.reserve(collectionId, written.length);
      const rowids = documents.writeBatch(collectionId, written, metadataOnly);
      indexes.written(
        collectionId,
        rowids.map((rowid, i) => ({ rowid, code: written[i]!.binaryCode })),
      );
      return rowids;
    },
    deleteDocuments(collectionId, docIds) {
      const result = documents.deleteDocuments(collectionId, docIds);
      indexes.removed(collectionId, result.rowids);
      return result;
    },
    beginStaging(collectionId, fingerprint, dimension) {
      staging.beginStaging(collectionId, fingerprint, dimension);
      indexes.beginStaging(collectionId, fingerprint, dimension);
    },
    stageCodes(collectionId, fingerprint, rows) {
      indexes.reserveStaged(collectionId, rows.length);
      const staged = new Set(staging.stageCodes(collectionId, fingerprint, rows));
      indexes.staged(
        collectionId,
        rows.filter((r) => staged.has(r.rowid)).map((r) => ({ rowid: r.rowid, code: r.binaryCode })),
      );
      return [...staged];
    },
    finishReencode(collectionId, fingerprint, dimension) {
      staging.finishReencode(collectionId, fingerprint, dimension);
      indexes.swapStaged(collectionId);
    },
    // One process holds the SQLite file (an exclusive lock): it always may.
    claimReencode: () => true,
    releaseReencode: () => undefined,
    databaseBytes: () => (pages.get() as { bytes: number }).bytes,
    ensureRoom: () => storage.ensureRoom(),
    probeWritable: () => probeWritable(db),
    storageStatus: () => storage.status(),
  };
}
