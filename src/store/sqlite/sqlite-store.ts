/**
 * The SQLite implementation of `Store`: its repositories over one better-sqlite3 database.
 * Every call is synchronous and short (better-sqlite3 blocks the event loop); statements are
 * prepared once; every write goes through the storage guard (a full disk is a 507, storage.ts).
 */
import type { Db } from '../database.js';
import { storageGuard } from '../storage.js';
import type { Store } from '../store.js';
import { createCollectionRepository } from './collections.js';
import { createDocumentRepository } from './documents.js';
import { createMetaRepository } from './meta.js';
import { createReencodeStaging } from './reencode-staging.js';

export function createSqliteStore(db: Db): Store {
  const storage = storageGuard(db);
  const pages = db.prepare('SELECT page_count * page_size AS bytes FROM pragma_page_count(), pragma_page_size()');
  return {
    ...createCollectionRepository(db, storage),
    ...createDocumentRepository(db, storage),
    ...createReencodeStaging(db, storage),
    ...createMetaRepository(db, storage),
    databaseBytes: () => (pages.get() as { bytes: number }).bytes,
    ensureRoom: () => storage.ensureRoom(),
  };
}
