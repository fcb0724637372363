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
  /**
   * Hold an exclusive lock on the file for as long as the connection is open (default true
   * for files). The search indexes live in the memory of the process that writes, so a second
   * process writing the same database would leave them stale: the lock makes the second one
   * fail at open instead. The operating system drops the lock when the process dies, even on
   * SIGKILL.
   */
  exclusive?: boolean;
}

/** The database file is held by another process (a running server, or an ingest). */
export class DatabaseLockedError extends Error {
  override name = 'DatabaseLockedError';
}

export function openDatabase(options: OpenOptions): Db {
  if (options.file !== ':memory:') mkdirSync(path.dirname(path.resolve(options.file)), { recursive: true });
  let db: Db;
  try {
    db = new Database(options.file);
  } catch (e) {
    throw new Error(`cannot open the database ${options.file}: ${(e as Error).message}`);
  }
  const exclusive = options.exclusive ?? options.file !== ':memory:';
  try {
    // Waits this long for a lock another process holds (e.g. a server still exiting).
    db.pragma('busy_timeout = 3000');
    // Exclusive before WAL: the WAL index then lives in this process's heap (no -shm file).
    if (exclusive) db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    // A write takes the lock now rather than at the first request.
    if (exclusive) db.exec('BEGIN IMMEDIATE; COMMIT');
  } catch (e) {
    db.close();
    if ((e as { code?: string }).code === 'SQLITE_BUSY') {
      throw new DatabaseLockedError(
        `the database ${options.file} is in use by another qembed process (a running server or ingest); ` +
          'stop it first, or send the documents to the running server with `qembed ingest --url`',
      );
    }
    throw new Error(`cannot open the database ${options.file}: ${(e as Error).message}`);
  }
  // NORMAL in WAL mode loses nothing on a process crash (SIGKILL); only a power cut can
  // drop the last commits. FULL would add an fsync per transaction.
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  migrate(db, readMigrations(options.migrationsDir ?? migrationsDir));
  return db;
}

/** Proves the database accepts writes (health check); throws if it does not. */
export function probeWritable(db: Db): void {
  db.prepare("INSERT INTO meta (key, value) VALUES ('health_probe', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(
    new Date().toISOString(),
  );
}
