/**
 * Opening the SQLite database: WAL mode, foreign keys, and the numbered migrations in
 * migrations/ applied in order and recorded in schema_versions.
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { migrationsDir } from '../paths.js';

export type Db = Database.Database;

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function readMigrations(dir: string): Migration[] {
  const files = readdirSync(dir).filter((f) => /^\d{3}-[\w-]+\.sql$/.test(f)).sort();
  return files.map((f) => ({ version: Number(f.slice(0, 3)), name: f, sql: readFileSync(path.join(dir, f), 'utf8') }));
}

/** Applies the migrations not yet recorded, each in its own transaction; returns the names applied. */
export function migrate(db: Db, migrations: Migration[]): string[] {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_versions (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`);
  const applied = new Set((db.prepare('SELECT version FROM schema_versions').all() as { version: number }[]).map((r) => r.version));
  const known = new Set(migrations.map((m) => m.version));
  const unknown = [...applied].filter((v) => !known.has(v));
  if (unknown.length > 0) {
    throw new Error(`the database has schema version(s) ${unknown.join(', ')} that this build does not know; it was written by a newer qembed`);
  }
  const done: string[] = [];
  const record = db.prepare('INSERT INTO schema_versions (version, name, applied_at) VALUES (?, ?, ?)');
  for (const m of migrations) {
    if (applied.has(m.version)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      record.run(m.version, m.name, new Date().toISOString());
    })();
    done.push(m.name);
  }
  return done;
}

export interface OpenOptions {
  /** SQLite file, or ':memory:'. */
  file: string;
  migrationsDir?: string;
}

export function openDatabase(options: OpenOptions): Db {
  if (options.file !== ':memory:') mkdirSync(path.dirname(path.resolve(options.file)), { recursive: true });
  let db: Db;
  try {
    db = new Database(options.file);
  } catch (e) {
    throw new Error(`cannot open the database ${options.file}: ${(e as Error).message}`);
  }
  db.pragma('journal_mode = WAL');
  // NORMAL in WAL mode loses nothing on a process crash (SIGKILL); only a power cut can
  // drop the last commits. FULL would add an fsync per transaction.
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db, readMigrations(options.migrationsDir ?? migrationsDir));
  return db;
}

/** Proves the database accepts writes (health check); throws if it does not. */
export function probeWritable(db: Db): void {
  db.prepare("INSERT INTO meta (key, value) VALUES ('health_probe', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(
    new Date().toISOString(),
  );
}
