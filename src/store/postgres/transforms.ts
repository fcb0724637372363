/**
 * Transforms over PostgreSQL (migrations/postgres/004-transforms.sql, as SQLite's): fitted
 * transforms kept with their collection, and a switch of the first-stage codes staged in
 * `transform_codes`, then swapped in by one transaction that the changes log tells the other
 * processes about (they load the collection's index again, and read its transform from the row).
 * The process that switches holds the collection's re-encode claim (reencode-staging.ts).
 */
import type { TransformRepository } from '../store.js';
import { floatsOf, TRANSFORM_INFO_COLUMNS, type TransformRow, toTransform, toTransformInfo } from '../transform-rows.js';
import type { PgBridge } from './bridge.js';
import type { ChangeLog } from './changes.js';
import { codePairs } from './rows.js';

export function createTransformRepository(pg: PgBridge, log: ChangeLog): TransformRepository {
  const countPending = (collectionId: number, fingerprint: string) =>
    pg.query<{ n: number }>(
      `SELECT count(*) AS n FROM documents d
       LEFT JOIN transform_codes t ON t.rowid = d.rowid AND t.transform = $1 AND t.text_sha256 = d.text_sha256
       WHERE d.collection_id = $2 AND t.rowid IS NULL`,
      [fingerprint, collectionId],
    )[0]!.n;

  return {
    saveTransform(t) {
      pg.query(
        `INSERT INTO transforms (collection_id, fingerprint, method, bits, dimension, mean, matrix, summary, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (collection_id, fingerprint) DO UPDATE SET summary = excluded.summary`,
        [t.collectionId, t.fingerprint, t.method, t.bits, t.dimension, floatsOf(t.mean), floatsOf(t.matrix), t.summary, t.createdAt],
      );
    },
    getTransform(collectionId, fingerprint) {
      const row = pg.query<TransformRow>('SELECT * FROM transforms WHERE collection_id = $1 AND fingerprint = $2', [collectionId, fingerprint])[0];
      return row && toTransform(row);
    },
    listTransforms: (collectionId) =>
      pg.query<TransformRow>(`SELECT ${TRANSFORM_INFO_COLUMNS} FROM transforms WHERE collection_id = $1 ORDER BY created_at DESC, fingerprint`, [collectionId]).map(toTransformInfo),
    setTransformSummary(collectionId, fingerprint, summary) {
      pg.query('UPDATE transforms SET summary = $1 WHERE collection_id = $2 AND fingerprint = $3', [summary, collectionId, fingerprint]);
    },
    beginTransformStaging(collectionId, fingerprint) {
      pg.transaction(() => {
        pg.query('UPDATE collections SET transform_target = $1 WHERE id = $2', [fingerprint, collectionId]);
        pg.query('DELETE FROM transform_codes WHERE collection_id = $1 AND transform <> $2', [collectionId, fingerprint]);
      });
      return { changes: [{ type: 'staging', collectionId, fingerprint, transform: true }] };
    },
    pendingTransformCodes: (collectionId, fingerprint, limit, afterRowid) =>
      pg
        .query<{ rowid: number; textSha256: string; int8Code: Uint8Array }>(
          `SELECT d.rowid AS rowid, d.text_sha256 AS "textSha256", d.int8_code AS "int8Code" FROM documents d
           LEFT JOIN transform_codes t ON t.rowid = d.rowid AND t.transform = $1 AND t.text_sha256 = d.text_sha256
           WHERE d.collection_id = $2 AND d.rowid > $3 AND t.rowid IS NULL ORDER BY d.rowid LIMIT $4`,
          [fingerprint, collectionId, afterRowid, limit],
        )
        .map((r) => ({ ...r, int8Code: Buffer.from(r.int8Code.buffer, r.int8Code.byteOffset, r.int8Code.byteLength) })),
    countPendingTransformCodes: countPending,
    stageTransformCodes(collectionId, fingerprint, rows) {
      const staged = new Set(
        pg
          .query<{ rowid: number }>(
            `INSERT INTO transform_codes (rowid, collection_id, transform, text_sha256, code)
             SELECT s.rowid, $1, $2, s.text_sha256, s.code FROM unnest($3::bigint[], $4::text[], $5::bytea[]) AS s(rowid, text_sha256, code)
             WHERE EXISTS (SELECT 1 FROM documents d WHERE d.rowid = s.rowid AND d.collection_id = $1)
             ON CONFLICT (rowid) DO UPDATE SET transform = excluded.transform, text_sha256 = excluded.text_sha256, code = excluded.code
             RETURNING rowid`,
            [collectionId, fingerprint, rows.map((r) => r.rowid), rows.map((r) => r.textSha256), rows.map((r) => r.code)],
          )
          .map((r) => r.rowid),
      );
      const entries = rows.filter((r) => staged.has(r.rowid)).map((r) => ({ rowid: r.rowid, code: r.code }));
      return { rowids: entries.map((e) => e.rowid), changes: [{ type: 'staged', collectionId, entries }] };
    },
    stagedTransformCodes: (collectionId, fingerprint) => codePairs(pg, 'transform_codes', 'code', 'collection_id = $1 AND transform = $2', [collectionId, fingerprint]),
    finishTransform(collectionId, fingerprint) {
      const { changes } = log.writing(() => {
        if (fingerprint === null) pg.query('UPDATE documents SET first_code = NULL WHERE collection_id = $1 AND first_code IS NOT NULL', [collectionId]);
        else {
          const pending = countPending(collectionId, fingerprint);
          if (pending !== 0) throw new Error(`${pending} documents have no staged codes yet`);
          pg.query(
            `UPDATE documents SET first_code = t.code FROM transform_codes t
             WHERE t.rowid = documents.rowid AND t.collection_id = $1 AND t.transform = $2`,
            [collectionId, fingerprint],
          );
        }
        pg.query('UPDATE collections SET transform = $1, transform_target = NULL, generation = generation + 1 WHERE id = $2', [fingerprint, collectionId]);
        pg.query('DELETE FROM transform_codes WHERE collection_id = $1', [collectionId]);
        // The others load the collection again (rowid 0); this process swaps its staged index in (first dims: loads again too).
        return {
          result: undefined,
          logged: [{ collection_id: collectionId, rowid: 0, deleted: false }],
          own: [fingerprint === null ? { type: 'dropped', collectionId } : { type: 'swapped', collectionId }],
        };
      });
      return { changes };
    },
    abandonTransform(collectionId) {
      pg.transaction(() => {
        pg.query('UPDATE collections SET transform_target = NULL WHERE id = $1', [collectionId]);
        pg.query('DELETE FROM transform_codes WHERE collection_id = $1', [collectionId]);
      });
      return { changes: [{ type: 'unstaged', collectionId }] };
    },
  };
}
