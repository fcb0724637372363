/** Reading rows as the PostgreSQL repositories share it: bytea as Buffers, whole collections a page at a time. */
import type { PgBridge } from './bridge.js';

/** Rows a paged read takes at a time (iterations over a whole collection). */
const PAGE = 10_000;

/** bytea arrives from the bridge as a Uint8Array: the store speaks Buffers. */
export const buffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/** The rows of a query, a page at a time in rowid order: `sql` places the condition on rowid it is given in its WHERE. */
export function* paged<T extends { rowid: number }>(pg: PgBridge, sql: (after: string) => string, params: readonly unknown[]): Generator<T> {
  let after = 0;
  for (;;) {
    const rows = pg.query<T>(sql(`rowid > $${params.length + 1}`) + ` ORDER BY rowid LIMIT ${PAGE}`, [...params, after]);
    yield* rows;
    if (rows.length < PAGE) return;
    after = rows[rows.length - 1]!.rowid;
  }
}

/** (rowid, code) pairs of `table`'s rows matching `where` (over $1, $2…), in rowid order; `code` is the column or expression read. */
export function* codePairs(pg: PgBridge, table: 'documents' | 'reencode_codes' | 'transform_codes', code: string, where: string, params: readonly unknown[]): Generator<[number, Buffer]> {
  for (const r of paged<{ rowid: number; code: Uint8Array }>(pg, (after) => `SELECT rowid, ${code} AS code FROM ${table} WHERE ${where} AND ${after}`, params)) {
    yield [r.rowid, buffer(r.code)];
  }
}
