/**
 * The SQLite implementation of `Store`: its repositories over one better-sqlite3 database.
 * Every call is synchronous and short (better-sqlite3 blocks the event loop); statements are
 * prepared once; every write goes through the storage guard (a full disk is a 507, storage.ts).
 * Writes return what they changed; the first stage (src/first-stage/) applies it.
 */
import path from 'node:path';
import { type Db, probeWritable } from '../database.js';
import { storageGuard } from '../storage.js';
import type { Store } from '../store.js';
import { createCollectionRepository } from './collections.js';
import { createDocumentRepository } from './documents.js';
import { createMetaRepository } from './meta.js';
import { createReencodeStaging } from './reencode-staging.js';
import { createTransformRepository } from './transforms.js';

export function createSqliteStore(db: Db): Store {
  const storage = storageGuard(db);
  const pages = db.prepare('SELECT page_count * page_size AS bytes FROM pragma_page_count(), pragma_page_size()');
  return {
    ...createCollectionRepository(db, storage),
    ...createDocumentRepository(db, storage),
    ...createReencodeStaging(db, storage),
    ...createTransformRepository(db, storage),
    ...createMetaRepository(db, storage),
    // One process holds the SQLite file (an exclusive lock): it always may.
    claimReencode: () => true,
    releaseReencode: () => undefined,
    databaseBytes: () => (pages.get() as { bytes: number }).bytes,
    ensureRoom: () => storage.ensureRoom(),
    probeWritable: () => probeWritable(db),
    storageStatus: () => storage.status(),
    // Beside the database file: its snapshots are only valid for it.
    snapshotDir: db.memory ? undefined : path.join(path.dirname(db.name), 'index-snapshots'),
  };
}
