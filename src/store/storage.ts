/**
 * A full disk (or a database at PRAGMA max_page_count) must be visible and cheap to refuse:
 * writes that find no room answer 507 QEMBED_STORAGE_FULL, the condition is remembered, and
 * until a probe write succeeds again every write is refused before its documents are encoded
 * (the expensive part), while GET /health reports it. Reads keep working.
 */
import { errors, QembedError } from '../errors.js';
import type { Db } from './database.js';

export interface StorageStatus {
  full: boolean;
  /** When a write first found no room (ISO time), while full. */
  since: string | null;
  message: string | null;
}

export interface StorageGuard {
  /** Throws 507 QEMBED_STORAGE_FULL while the storage is full (probing again first). */
  ensureRoom(): void;
  /** Runs a database write; a full database becomes 507 and is remembered, a success clears it. */
  write<T>(fn: () => T): T;
  status(): StorageStatus;
}

/** Bytes a probe tries to write: a few pages, as a small batch of documents would need. */
const PROBE_BYTES = 16 * 1024;

export const isStorageFull = (e: unknown): boolean => (e as { code?: string }).code === 'SQLITE_FULL';

const guards = new WeakMap<Db, StorageGuard>();

/** The guard of a database: one per connection, shared by every store and health check on it. */
export function storageGuard(db: Db): StorageGuard {
  let guard = guards.get(db);
  if (!guard) {
    guard = createStorageGuard(db);
    guards.set(db, guard);
  }
  return guard;
}

function createStorageGuard(db: Db): StorageGuard {
  let since: string | null = null;
  let message: string | null = null;
  const probe = db.prepare("INSERT INTO meta (key, value) VALUES ('storage_probe', hex(randomblob(?))) ON CONFLICT (key) DO UPDATE SET value = excluded.value");
  const full = (e: unknown): QembedError => {
    since ??= new Date().toISOString();
    message = (e as Error).message;
    return errors.storageFull(`the database cannot grow (${message}); free disk space, then retry: nothing was written`);
  };
  return {
    ensureRoom() {
      if (since === null) return;
      try {
        // Inside a savepoint rolled back at once: the probe needs room but leaves nothing.
        db.exec('SAVEPOINT storage_probe');
        try {
          probe.run(PROBE_BYTES / 2);
        } catch (e) {
          // SQLite may already have rolled the whole savepoint back on SQLITE_FULL.
          if (db.inTransaction) db.exec('ROLLBACK TO storage_probe; RELEASE storage_probe');
          throw e;
        }
        db.exec('ROLLBACK TO storage_probe; RELEASE storage_probe');
        since = null;
        message = null;
      } catch (e) {
        if (isStorageFull(e)) throw full(e);
        throw e;
      }
    },
    write(fn) {
      try {
        const result = fn();
        since = null;
        message = null;
        return result;
      } catch (e) {
        if (isStorageFull(e)) throw full(e);
        throw e;
      }
    },
    status: () => ({ full: since !== null, since, message }),
  };
}
