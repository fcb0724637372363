/** Service-wide key/value settings over SQLite's `meta` table. */
import type { Db } from '../database.js';
import type { StorageGuard } from '../storage.js';
import type { MetaRepository } from '../store.js';

export function createMetaRepository(db: Db, storage: StorageGuard): MetaRepository {
  const get = db.prepare<[string]>('SELECT value FROM meta WHERE key = ?').pluck(true);
  const set = db.prepare<[string, string]>('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
  return {
    getMeta: (key) => (get.get(key) as string | undefined) ?? undefined,
    setMeta: (key, value) => void storage.write(() => set.run(key, value)),
  };
}
