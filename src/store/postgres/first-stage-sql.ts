/**
 * The Hamming first stage computed by PostgreSQL itself (QEMBED_PG_FIRST_STAGE): `exact` sorts
 * every document of the collection by `<~>` over pgvector bit strings, `hnsw` walks pgvector's
 * HNSW index over them (approximate, with iterative scans so that filters still find k). The
 * first stage (src/first-stage/) sends Hamming queries here instead of to its in-memory index.
 */
import { errors } from '../../errors.js';
import type { CollectionRow, FirstStageResult } from '../store.js';
import type { PgBridge } from './bridge.js';

export type SqlFirstStage = 'exact' | 'hnsw';

/** A code as a bit-string literal ('0101…'), the first `bits` bits. */
const bitString = (code: Uint8Array, bits: number): string => {
  let out = '';
  for (let i = 0; i < bits; i++) out += (code[i >> 3]! >> (7 - (i & 7))) & 1;
  return out;
};

/** `efSearch`: hnsw.ef_search of the HNSW first stage (at least the candidates asked for; default 100). */
export function createSqlFirstStage(pg: PgBridge, mode: SqlFirstStage, efSearch = 100) {
  /** Collections whose HNSW index exists (built at first use). */
  const hnswReady = new Set<number>();
  const bitsExpr = (bits: number) => `substring(binary_bits from 1 for ${bits})::bit(${bits})`;
  function ensureHnsw(c: CollectionRow, bits: number): void {
    if (hnswReady.has(c.id)) return;
    // Minutes for millions of documents: the first search waits for it (create it ahead with this statement).
    pg.query(`CREATE INDEX IF NOT EXISTS documents_hnsw_${c.id}_${bits} ON documents USING hnsw ((${bitsExpr(bits)}) bit_hamming_ops) WHERE collection_id = ${c.id}`, [], {
      timeoutMs: 6 * 3600_000,
    });
    hnswReady.add(c.id);
  }

  /** ORDER BY Hamming distance to `code` (the collection's code length), over the collection or over `rowids`. */
  return (collectionId: number, code: Uint8Array, k: number, rowids?: readonly number[]): FirstStageResult => {
    const c = pg.query<CollectionRow>('SELECT * FROM collections WHERE id = $1', [collectionId])[0];
    if (!c) throw errors.collectionNotFound(`collection ${collectionId} does not exist`);
    const bits = code.length * 8;
    const filter = rowids ? ' AND rowid = ANY($4::bigint[])' : '';
    const params = [collectionId, bitString(code, bits), k, ...(rowids ? [rowids] : [])];
    let rows: { rowid: number; d: number }[];
    if (mode === 'exact') {
      rows = pg.query(`SELECT rowid, substring(binary_bits from 1 for ${bits}) <~> $2::varbit AS d FROM documents WHERE collection_id = $1${filter} ORDER BY d, rowid LIMIT $3`, params);
    } else {
      ensureHnsw(c, bits);
      rows = pg.transaction(() => {
        pg.query(`SET LOCAL hnsw.ef_search = ${Math.max(efSearch, k)}`);
        pg.query("SET LOCAL hnsw.iterative_scan = 'relaxed_order'");
        return pg.query<{ rowid: number; d: number }>(
          `SELECT rowid, d FROM (SELECT rowid, ${bitsExpr(bits)} <~> $2::bit(${bits}) AS d FROM documents WHERE collection_id = $1${filter}
             ORDER BY ${bitsExpr(bits)} <~> $2::bit(${bits}) LIMIT $3) t ORDER BY d, rowid`,
          params,
        );
      });
    }
    return { rowids: rows.map((r) => r.rowid), distances: rows.map((r) => Number(r.d)), scanned: rowids ? rowids.length : c.document_count };
  };
}
