// @ts-check
/**
 * The PostgreSQL connection of a store (bridge.ts), in a worker thread: node-postgres is
 * asynchronous, the store's contract synchronous (store.ts), so the searching thread posts one
 * query at a time and sleeps on a shared flag until this thread has the answer. A connection
 * that broke (server restarted, network) is dropped and made again at the next query.
 *
 * Plain JavaScript (type-checked through JSDoc) because worker threads do not inherit the
 * TypeScript loader that tests and `npm run dev` use; the same file runs from src/ and dist/.
 */
import { workerData } from 'node:worker_threads';
import pg from 'pg';
import { clientConfig } from '../../database-url.mjs';

/** @typedef {{ sql: string, params: unknown[] }} Request */

const { url, port, flag } = /** @type {{ url: string, port: import('node:worker_threads').MessagePort, flag: Int32Array }} */ (workerData);

// BIGINT and COUNT(*) as numbers: rowids, ids and counts stay far below 2^53.
pg.types.setTypeParser(20, (v) => Number(v));

/** @type {pg.Client | undefined} */
let client;

/** SQLSTATE classes and socket errors that mean the connection, not the statement, failed. */
const isConnectionError = (/** @type {any} */ e) =>
  typeof e?.code !== 'string' ||
  /^(08|57P0)/.test(e.code) ||
  ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH'].includes(e.code);

async function connection() {
  if (!client) {
    const c = new pg.Client({ connectionTimeoutMillis: 5000, ...clientConfig(url) });
    c.on('error', () => {
      if (client === c) client = undefined;
    });
    try {
      await c.connect();
    } catch (e) {
      void c.end().catch(() => {});
      throw e;
    }
    client = c;
  }
  return client;
}

/** Typed arrays travel as Uint8Array views; node-postgres sends Buffers as bytea. */
/** @returns {unknown} */
const param = (/** @type {unknown} */ v) => (ArrayBuffer.isView(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : Array.isArray(v) ? v.map(param) : v);

/** @param {Request} request */
async function answer(request) {
  try {
    const c = await connection();
    const result = await c.query(request.sql, request.params.map(param));
    return { rows: result.rows, rowCount: result.rowCount ?? 0 };
  } catch (e) {
    const err = /** @type {any} */ (e);
    const connectionLost = isConnectionError(err);
    if (connectionLost && client) {
      const broken = client;
      client = undefined;
      void broken.end().catch(() => {});
    }
    return { error: { message: String(err?.message ?? err), code: typeof err?.code === 'string' ? err.code : undefined, connection: connectionLost } };
  }
}

port.on('message', async (/** @type {Request | { close: true }} */ request) => {
  if ('close' in request) {
    await client?.end().catch(() => {});
    port.close();
    return;
  }
  port.postMessage(await answer(request));
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
});
