/**
 * PostgreSQL migrations (migrations/postgres/NNN-name.sql), applied at start in order, each in
 * its own transaction, under an advisory lock: two API processes starting at once on a new
 * database apply each migration once (the second waits, then finds it applied).
 */
import path from 'node:path';
import { readMigrations } from '../database.js';
import { migrationsDir } from '../../paths.js';
import type { PgBridge } from './bridge.js';

/** Taken by every process that migrates (an arbitrary constant, qembed's own). */
const MIGRATION_LOCK = 7_211_001;

export const postgresMigrationsDir = path.join(migrationsDir, 'postgres');

/** Applies the migrations this database lacks; returns their names. */
export function migratePostgres(pg: PgBridge, dir = postgresMigrationsDir): string[] {
  const applied: string[] = [];
  pg.transaction(() => {
    pg.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    pg.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())');
    const done = new Set(pg.query<{ version: number }>('SELECT version FROM schema_migrations').map((r) => r.version));
    for (const m of readMigrations(dir)) {
      if (done.has(m.version)) continue;
      pg.query(m.sql);
      pg.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      applied.push(m.name);
    }
  });
  return applied;
}
