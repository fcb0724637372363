/**
 * Synchronous PostgreSQL for the store's synchronous contract (store.ts: one tick sees one
 * state). A worker thread owns the connection (pg-thread.mjs); `query` posts the statement and
 * blocks this thread on `Atomics.wait` until the answer is back (a local round trip is a
 * fraction of a millisecond). A transaction is BEGIN, the statements, COMMIT issued while this
 * thread is blocked in between, so nothing else of this process interleaves.
 *
 * A lost connection (server restarted or unreachable) is a 503 QEMBED_DATABASE_UNAVAILABLE
 * with Retry-After; the thread connects again at the next query, so a retry succeeds once the
 * server is back.
 */
import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { errors, QembedError } from '../../errors.js';

/** A statement's error from PostgreSQL (its SQLSTATE in `code`). */
export class PgError extends Error {
  override name = 'PgError';
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

/** SQLSTATE 23505: a unique constraint refused the row. */
export const isUniqueViolation = (e: unknown): boolean => e instanceof PgError && e.code === '23505';
/** SQLSTATE 23503: a foreign key refused the row (its collection is gone). */
export const isForeignKeyViolation = (e: unknown): boolean => e instanceof PgError && e.code === '23503';

export interface PgBridge {
  /** `timeoutMs`: the longest wait for this statement (default 120 s) before a 503. */
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[], options?: { timeoutMs?: number }): T[];
  /** Runs `fn` between BEGIN and COMMIT (ROLLBACK when it throws). Not reentrant. */
  transaction<T>(fn: () => T): T;
  close(): Promise<void>;
}

/** Longest wait for one statement before the database is taken to be unavailable. */
const STATEMENT_TIMEOUT_MS = 120_000;

type Reply = { rows: unknown[]; rowCount: number } | { error: { message: string; code?: string; connection: boolean } };

export function createPgBridge(url: string): PgBridge {
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(new URL('./pg-thread.mjs', import.meta.url), { workerData: { url, port: port2, flag }, transferList: [port2] });
  worker.unref();
  let inTransaction = false;

  const unavailable = (why: string) =>
    errors.databaseUnavailable(`the database is unavailable (${why}); retry in a few seconds`, { retryAfterSeconds: 2 });

  function query<T>(sql: string, params: readonly unknown[] = [], options: { timeoutMs?: number } = {}): T[] {
    const timeout = options.timeoutMs ?? STATEMENT_TIMEOUT_MS;
    Atomics.store(flag, 0, 0);
    port1.postMessage({ sql, params });
    if (Atomics.wait(flag, 0, 0, timeout) === 'timed-out') throw unavailable(`no answer in ${timeout / 1000} s`);
    const message = receiveMessageOnPort(port1);
    if (!message) throw errors.internal('the database thread answered nothing');
    const reply = message.message as Reply;
    if ('error' in reply) {
      if (reply.error.connection) throw unavailable(reply.error.message);
      throw new PgError(reply.error.message, reply.error.code);
    }
    return reply.rows as T[];
  }

  return {
    query,
    transaction<T>(fn: () => T): T {
      if (inTransaction) throw new Error('transactions do not nest');
      inTransaction = true;
      try {
        query('BEGIN');
        let result: T;
        try {
          result = fn();
        } catch (e) {
          try {
            query('ROLLBACK');
          } catch {
            // the connection is gone: the server rolled it back
          }
          throw e;
        }
        query('COMMIT');
        return result;
      } finally {
        inTransaction = false;
      }
    },
    async close() {
      port1.postMessage({ close: true });
      await worker.terminate();
    },
  };
}

/** Whether `e` is the bridge's 503 (the database could not be reached). */
export const isUnavailable = (e: unknown): boolean => e instanceof QembedError && e.code === 'QEMBED_DATABASE_UNAVAILABLE';
