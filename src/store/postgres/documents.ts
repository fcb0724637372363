/**
 * Documents over PostgreSQL: one row per document with its text, metadata (and a jsonb copy for
 * filters), text hash and both codes. A batch is one statement in one transaction, logged in the
 * changes table for the other processes (changes.ts); an existing id keeps its rowid.
 */
import { errors } from '../../errors.js';
import { checkBasis, type DocumentRepository, MAX_ROWID, type MetadataFilter, StaleWriteError, type StoredDocument, type WriteBasis } from '../store.js';
import { isForeignKeyViolation, type PgBridge } from './bridge.js';
import type { ChangeLog } from './changes.js';
import { buffer, codePairs, paged } from './rows.js';

type DocRow = { rowid: number; doc_id: string; text: string; metadata: string; updated_at: string; text_sha256: string };
const DOC_COLUMNS = 'rowid, doc_id, text, metadata, updated_at, text_sha256';
const toDocument = (r: DocRow): StoredDocument => ({ rowid: r.rowid, docId: r.doc_id, text: r.text, metadata: r.metadata, updatedAt: r.updated_at, textSha256: r.text_sha256 });

/**
 * A metadata filter as a condition on `documents` (to follow an AND), its parameters numbered
 * from $`first`. Containment finds the candidates through the GIN index; equality of each key's
 * value keeps JSON's types as SQLite's filter does (an array holding the value is not the value).
 */
function filterCondition(filter: MetadataFilter, first: number): { sql: string; params: unknown[] } {
  const keys = Object.keys(filter).sort();
  if (keys.length === 0) return { sql: 'TRUE', params: [] };
  const exact = keys.map((_, i) => `metadata_json -> $${first + 1 + 2 * i} = $${first + 2 + 2 * i}::jsonb`);
  return { sql: [`metadata_json @> $${first}::jsonb`, ...exact].join(' AND '), params: [JSON.stringify(filter), ...keys.flatMap((k) => [k, JSON.stringify(filter[k])])] };
}

export function createDocumentRepository(pg: PgBridge, log: ChangeLog): DocumentRepository {
  const bump = (collectionId: number) => pg.query('UPDATE collections SET generation = generation + 1 WHERE id = $1', [collectionId]);

  return {
    digests(collectionId, docIds) {
      const rows = pg.query<{ doc_id: string; text_sha256: string; metadata: string }>(
        'SELECT doc_id, text_sha256, metadata FROM documents WHERE collection_id = $1 AND doc_id = ANY($2::text[])',
        [collectionId, docIds],
      );
      return new Map(rows.map((r) => [r.doc_id, { textSha256: r.text_sha256, metadata: r.metadata }]));
    },
    writeBatch(collectionId, documents, metadataOnly, basis) {
      try {
        const { result: rowids, changes } = log.writing(() => {
          // Under the write lock: no other process switches the collection's codes until this commits.
          if (basis) checkBasis(pg.query<WriteBasis>('SELECT fingerprint, transform FROM collections WHERE id = $1', [collectionId])[0], basis);
          const at = new Date().toISOString();
          for (const m of metadataOnly) {
            const updated = pg.query('UPDATE documents SET metadata = $1, updated_at = $2 WHERE collection_id = $3 AND doc_id = $4 AND text_sha256 = $5 RETURNING rowid', [
              m.metadata,
              at,
              collectionId,
              m.docId,
              m.expectedTextSha256,
            ]);
            if (updated.length !== 1) throw new StaleWriteError(`document "${m.docId}" changed while the batch was being encoded`);
          }
          if (documents.length === 0) return { result: [] as number[], logged: [], own: [] };
          const rows = pg.query<{ rowid: number; doc_id: string }>(
            `INSERT INTO documents (collection_id, doc_id, text, metadata, text_sha256, binary_code, int8_code, first_code, updated_at)
             SELECT $1::bigint, u.*, $9::text FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::bytea[], $8::bytea[]) AS u
             ON CONFLICT (collection_id, doc_id) DO UPDATE SET text = excluded.text, metadata = excluded.metadata,
               text_sha256 = excluded.text_sha256, binary_code = excluded.binary_code, int8_code = excluded.int8_code,
               first_code = excluded.first_code, updated_at = excluded.updated_at
             RETURNING rowid, doc_id`,
            [
              collectionId,
              documents.map((d) => d.docId),
              documents.map((d) => d.text),
              documents.map((d) => d.metadata),
              documents.map((d) => d.textSha256),
              documents.map((d) => d.binaryCode),
              documents.map((d) => d.int8Code),
              documents.map((d) => d.firstCode ?? null),
              at,
            ],
          );
          const byId = new Map(rows.map((r) => [r.doc_id, r.rowid]));
          const rowids = documents.map((d) => byId.get(d.docId)!);
          if (rowids.some((r) => r > MAX_ROWID)) throw errors.internal(`the database has used up its ${MAX_ROWID} document rowids`);
          bump(collectionId);
          return {
            result: rowids,
            logged: rowids.map((rowid) => ({ collection_id: collectionId, rowid, deleted: false })),
            // This process's own codes, as written (no need to read them back).
            own: [{ type: 'written', collectionId, entries: rowids.map((rowid, i) => ({ rowid, code: documents[i]!.firstCode ?? documents[i]!.binaryCode })) }],
          };
        });
        return { rowids, changes };
      } catch (e) {
        if (isForeignKeyViolation(e)) throw errors.collectionNotFound('the collection was deleted while the batch was being encoded');
        throw e;
      }
    },
    getDocument(collectionId, docId) {
      const row = pg.query<DocRow>(`SELECT ${DOC_COLUMNS} FROM documents WHERE collection_id = $1 AND doc_id = $2`, [collectionId, docId])[0];
      return row && toDocument(row);
    },
    deleteDocuments(collectionId, docIds) {
      const { result, changes } = log.writing(() => {
        const rows = pg.query<{ rowid: number; doc_id: string }>('DELETE FROM documents WHERE collection_id = $1 AND doc_id = ANY($2::text[]) RETURNING rowid, doc_id', [
          collectionId,
          docIds,
        ]);
        const byId = new Map(rows.map((r) => [r.doc_id, r.rowid]));
        const deleted = docIds.filter((id) => byId.has(id));
        const rowids = deleted.map((id) => byId.get(id)!);
        if (rowids.length === 0) return { result: { rowids, deleted }, logged: [], own: [] };
        bump(collectionId);
        return {
          result: { rowids, deleted },
          logged: rowids.map((rowid) => ({ collection_id: collectionId, rowid, deleted: true })),
          own: [{ type: 'deleted', collectionId, rowids }],
        };
      });
      return { ...result, changes };
    },
    filterRowids(collectionId, filter) {
      const where = filterCondition(filter, 2);
      return pg.query<{ rowid: number }>(`SELECT rowid FROM documents WHERE collection_id = $1 AND ${where.sql} ORDER BY rowid`, [collectionId, ...where.params]).map((r) => r.rowid);
    },
    listDocuments(collectionId, { afterRowid, limit, filter = {} }) {
      const where = filterCondition(filter, 4);
      return pg.transaction(() => {
        // The page and its total from one snapshot, as SQLite's.
        pg.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
        // On a sharded coordinator (sharding.ts) the planner would rather fetch every document after
        // the cursor and sort them; without sorts each shard walks its part in rowid order and the
        // coordinator merges them up to the page's end (test/postgres/sharding.test.ts). One
        // instance walks its (collection_id, rowid) index either way. Not with a filter: a
        // selective one is better found through the GIN index and its few matches sorted.
        if (Object.keys(filter).length === 0) pg.query('SET LOCAL enable_sort = off');
        const rows = pg.query<DocRow>(`SELECT ${DOC_COLUMNS} FROM documents WHERE collection_id = $1 AND rowid > $2 AND ${where.sql} ORDER BY rowid LIMIT $3`, [
          collectionId,
          afterRowid,
          limit,
          ...where.params,
        ]);
        const total =
          Object.keys(filter).length === 0
            ? (pg.query<{ n: number }>('SELECT document_count AS n FROM collections WHERE id = $1', [collectionId])[0]?.n ?? 0)
            : pg.query<{ n: number }>(`SELECT count(*) AS n FROM documents WHERE collection_id = $1 AND ${filterCondition(filter, 2).sql}`, [collectionId, ...where.params])[0]!.n;
        return { documents: rows.map(toDocument), total };
      });
    },
    int8Codes(rowids) {
      const rows = pg.query<{ rowid: number; int8_code: Uint8Array }>('SELECT rowid, int8_code FROM documents WHERE rowid = ANY($1::bigint[])', [rowids]);
      const map = new Map(rows.map((r) => [r.rowid, buffer(r.int8_code)]));
      return rowids.map((r) => map.get(r));
    },
    int8CodePage(collectionId, afterRowid, limit) {
      const rows = pg.query<{ rowid: number; int8_code: Uint8Array }>(
        'SELECT rowid, int8_code FROM documents WHERE collection_id = $1 AND rowid > $2 ORDER BY rowid LIMIT $3',
        [collectionId, afterRowid, limit],
      );
      return { rowids: rows.map((r) => r.rowid), codes: rows.map((r) => buffer(r.int8_code)) };
    },
    documentsByRowid(rowids) {
      const rows = pg.query<DocRow>(`SELECT ${DOC_COLUMNS} FROM documents WHERE rowid = ANY($1::bigint[])`, [rowids]);
      const map = new Map(rows.map((r) => [r.rowid, toDocument(r)]));
      return rowids.map((r) => map.get(r));
    },
    countVectorDocuments: (collectionId) =>
      pg.query<{ n: number }>("SELECT count(*) AS n FROM documents WHERE collection_id = $1 AND text_sha256 LIKE 'vector:%'", [collectionId])[0]!.n,
    iterateBinaryCodes: (collectionId) => codePairs(pg, 'documents', 'coalesce(first_code, binary_code)', 'collection_id = $1', [collectionId]),
    *iterateDocuments(collectionId) {
      for (const r of paged<DocRow & { binary_code: Uint8Array; int8_code: Uint8Array; first_code: Uint8Array | null }>(
        pg,
        (after) => `SELECT ${DOC_COLUMNS}, binary_code, int8_code, first_code FROM documents WHERE collection_id = $1 AND ${after}`,
        [collectionId],
      )) {
        yield { ...toDocument(r), binaryCode: buffer(r.binary_code), int8Code: buffer(r.int8_code), firstCode: r.first_code && buffer(r.first_code) };
      }
    },
  };
}
