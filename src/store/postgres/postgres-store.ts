/**
 * The PostgreSQL implementation of `Store` (QEMBED_DATABASE_URL=postgres://...), for several
 * API processes on one database: its repositories over one synchronous bridge (bridge.ts), one
 * file each as SQLite's, with the same tables and meaning (migrations/postgres/).
 *
 * Each process keeps its own first stage (src/first-stage/); the changes log (changes.ts) keeps
 * them in step: writes return the other processes' changes ahead of their own, and the first
 * stage asks for the others' changes before each search (othersChanges). With
 * QEMBED_PG_FIRST_STAGE `exact` or `hnsw` the database computes the Hamming first stage itself
 * (first-stage-sql.ts).
 */
import type { Store } from '../store.js';
import { createPgBridge, type PgBridge } from './bridge.js';
import { type ChangeLogOptions, createChangeLog } from './changes.js';
import { createCollectionRepository } from './collections.js';
import { createDocumentRepository } from './documents.js';
import { createSqlFirstStage } from './first-stage-sql.js';
import { createMetaRepository } from './meta.js';
import { migratePostgres } from './migrate.js';
import { createReencodeStaging } from './reencode-staging.js';
import { createTransformRepository } from './transforms.js';

export interface PostgresStore extends Store {
  close(): Promise<void>;
}

/**
 * Where the Hamming first stage runs: `memory` (the in-memory index of each process, the
 * default), `exact` (PostgreSQL sorts every document by `<~>`) or `hnsw` (pgvector's HNSW index
 * over the bit codes, approximate, with iterative scans so that filters still find k). The
 * asymmetric first stage always runs in memory (the index is then loaded at first use).
 */
export type PgFirstStage = 'memory' | 'exact' | 'hnsw';
export const PG_FIRST_STAGES: readonly PgFirstStage[] = ['memory', 'exact', 'hnsw'];

export interface PostgresStoreOptions extends ChangeLogOptions {
  firstStage?: PgFirstStage;
  /** hnsw.ef_search of the HNSW first stage (at least the candidates asked for). */
  efSearch?: number;
}

/** Connects, migrates and returns the store (throws 503 when the database cannot be reached). */
export function openPostgresStore(url: string, options: PostgresStoreOptions = {}): PostgresStore {
  const pg = createPgBridge(url);
  migratePostgres(pg);
  return createPostgresStore(pg, options);
}

export function createPostgresStore(pg: PgBridge, options: PostgresStoreOptions = {}): PostgresStore {
  const firstStage = options.firstStage ?? 'memory';
  const collections = createCollectionRepository(pg);
  const meta = createMetaRepository(pg);
  const log = createChangeLog(pg, () => collections.listCollections().map((c) => c.id), options);
  return {
    ...collections,
    ...createDocumentRepository(pg, log),
    ...createReencodeStaging(pg, log),
    ...createTransformRepository(pg, log),
    ...meta,
    othersChanges: log.othersChanges,
    ...(firstStage !== 'memory' && { nearestInDatabase: createSqlFirstStage(pg, firstStage, options.efSearch) }),
    databaseBytes: () => pg.query<{ bytes: number }>('SELECT pg_database_size(current_database()) AS bytes')[0]!.bytes,
    ensureRoom: () => undefined,
    probeWritable: () => meta.setMeta('health_probe', new Date().toISOString()),
    storageStatus: () => ({ full: false, since: null, message: null }),
    close: () => pg.close(),
  };
}
