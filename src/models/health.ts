/**
 * The service's health, as GET /health reports it: the served model's thread runs, the
 * database accepts a write, the service is not shutting down, and whether the storage is full.
 * A storage marked full is probed again here (when nothing else is down), so that the condition
 * clears once disk space is back even if no write comes to clear it.
 */
import type { Encoder } from '../encoder/encoder.js';
import type { StorageState } from '../store/store.js';

export interface Health {
  /** ok; degraded: searches work but writes are refused (storage full); unavailable: something is down. */
  status: 'ok' | 'degraded' | 'unavailable';
  /** What is wrong, one sentence each. */
  problems: string[];
  database: 'ok' | 'unavailable';
  storage: ReturnType<StorageState['storageStatus']>;
}

export function checkHealth(parts: { encoder: Encoder; storage: StorageState; shuttingDown: boolean }): Health {
  const { encoder, storage } = parts;
  const problems: string[] = [];
  if (!encoder.healthy()) problems.push('the model thread is not running');
  let database: Health['database'] = 'ok';
  try {
    storage.probeWritable();
  } catch (e) {
    database = 'unavailable';
    problems.push(`the database does not accept writes: ${(e as Error).message}`);
  }
  if (parts.shuttingDown) problems.push('shutting down');
  const down = problems.length > 0;
  if (!down && storage.storageStatus().full) {
    try {
      storage.ensureRoom(); // a probe write: clears the condition once space is back
    } catch {
      // still full
    }
  }
  const full = storage.storageStatus();
  if (full.full) problems.push(`the storage is full since ${full.since}: writes answer 507 until disk space is freed (${full.message})`);
  return { status: down ? 'unavailable' : full.full ? 'degraded' : 'ok', problems, database, storage: full };
}
