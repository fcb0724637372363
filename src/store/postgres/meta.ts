/** Service-wide key/value settings over PostgreSQL's `meta` table. */
import type { MetaRepository } from '../store.js';
import type { PgBridge } from './bridge.js';

export function createMetaRepository(pg: PgBridge): MetaRepository {
  return {
    getMeta: (key) => pg.query<{ value: string }>('SELECT value FROM meta WHERE key = $1', [key])[0]?.value,
    setMeta: (key, value) => void pg.query('INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [key, value]),
  };
}
