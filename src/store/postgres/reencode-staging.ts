/**
 * Re-encode staging over PostgreSQL (the `reencode_codes` table, as SQLite's): codes of the
 * target model are staged beside the current ones, keyed by rowid and the text hash they were
 * made from, then swapped in by one transaction that the changes log tells the other processes
 * about (their first stages load the collection again). One process re-encodes a collection at
 * a time: it holds a session advisory lock for it.
 */
import type { ReencodeStaging } from '../store.js';
import type { PgBridge } from './bridge.js';
import type { ChangeLog } from './changes.js';
import { codePairs } from './rows.js';

/** Held (with the collection id) by the process that re-encodes a collection. */
const REENCODE_LOCK = 7_211;

export function createReencodeStaging(pg: PgBridge, log: ChangeLog): ReencodeStaging {
  /** Documents without staged codes of their current text for `fingerprint`. */
  const countPending = (collectionId: number, fingerprint: string) =>
    pg.query<{ n: number }>(
      `SELECT count(*) AS n FROM documents d
       LEFT JOIN reencode_codes r ON r.rowid = d.rowid AND r.fingerprint = $1 AND r.text_sha256 = d.text_sha256
       WHERE d.collection_id = $2 AND r.rowid IS NULL`,
      [fingerprint, collectionId],
    )[0]!.n;

  return {
    beginStaging(collectionId, fingerprint) {
      pg.transaction(() => {
        pg.query('UPDATE collections SET reencode_target = $1 WHERE id = $2', [fingerprint, collectionId]);
        pg.query('DELETE FROM reencode_codes WHERE collection_id = $1 AND fingerprint <> $2', [collectionId, fingerprint]);
      });
      return { changes: [{ type: 'staging', collectionId, fingerprint }] };
    },
    pendingReencode: (collectionId, fingerprint, limit, afterRowid = 0) =>
      pg.query<{ rowid: number; text: string; textSha256: string }>(
        `SELECT d.rowid AS rowid, d.text AS text, d.text_sha256 AS "textSha256" FROM documents d
         LEFT JOIN reencode_codes r ON r.rowid = d.rowid AND r.fingerprint = $1 AND r.text_sha256 = d.text_sha256
         WHERE d.collection_id = $2 AND d.rowid > $3 AND r.rowid IS NULL ORDER BY d.rowid LIMIT $4`,
        [fingerprint, collectionId, afterRowid, limit],
      ),
    countPendingReencode: countPending,
    stageCodes(collectionId, fingerprint, rows) {
      const staged = new Set(
        pg
          .query<{ rowid: number }>(
            `INSERT INTO reencode_codes (rowid, collection_id, fingerprint, text_sha256, binary_code, int8_code)
             SELECT s.rowid, $1, $2, s.text_sha256, s.binary_code, s.int8_code
             FROM unnest($3::bigint[], $4::text[], $5::bytea[], $6::bytea[]) AS s(rowid, text_sha256, binary_code, int8_code)
             WHERE EXISTS (SELECT 1 FROM documents d WHERE d.rowid = s.rowid AND d.collection_id = $1)
             ON CONFLICT (rowid) DO UPDATE SET fingerprint = excluded.fingerprint, text_sha256 = excluded.text_sha256,
               binary_code = excluded.binary_code, int8_code = excluded.int8_code
             RETURNING rowid`,
            [collectionId, fingerprint, rows.map((r) => r.rowid), rows.map((r) => r.textSha256), rows.map((r) => r.binaryCode), rows.map((r) => r.int8Code)],
          )
          .map((r) => r.rowid),
      );
      const entries = rows.filter((r) => staged.has(r.rowid)).map((r) => ({ rowid: r.rowid, code: r.binaryCode }));
      return { rowids: entries.map((e) => e.rowid), changes: [{ type: 'staged', collectionId, entries }] };
    },
    finishReencode(collectionId, fingerprint, dimension) {
      const { changes } = log.writing(() => {
        const pending = countPending(collectionId, fingerprint);
        if (pending !== 0) throw new Error(`${pending} documents have no staged codes yet`);
        pg.query(
          `UPDATE documents SET binary_code = r.binary_code, int8_code = r.int8_code, first_code = NULL
           FROM reencode_codes r WHERE r.rowid = documents.rowid AND r.collection_id = $1 AND r.fingerprint = $2`,
          [collectionId, fingerprint],
        );
        // The new model's codes are first dims: transforms fitted in the old model's space are dropped.
        pg.query('UPDATE collections SET fingerprint = $1, dimension = $2, reencode_target = NULL, transform = NULL, transform_target = NULL, generation = generation + 1 WHERE id = $3', [
          fingerprint,
          dimension,
          collectionId,
        ]);
        pg.query('DELETE FROM reencode_codes WHERE collection_id = $1', [collectionId]);
        pg.query('DELETE FROM transform_codes WHERE collection_id = $1', [collectionId]);
        pg.query('DELETE FROM transforms WHERE collection_id = $1', [collectionId]);
        // The others load the whole collection again (rowid 0); this process swaps its staged index in.
        return { result: undefined, logged: [{ collection_id: collectionId, rowid: 0, deleted: false }], own: [{ type: 'swapped', collectionId }] };
      });
      return { changes };
    },
    stagedBinaryCodes: (collectionId, fingerprint) => codePairs(pg, 'reencode_codes', 'binary_code', 'collection_id = $1 AND fingerprint = $2', [collectionId, fingerprint]),
    // A session-level advisory lock: released by the process, or by PostgreSQL when its
    // connection ends (a process that died), so that another process can take over.
    claimReencode: (collectionId) => pg.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2::int) AS ok', [REENCODE_LOCK, collectionId])[0]!.ok,
    releaseReencode(collectionId) {
      try {
        pg.query('SELECT pg_advisory_unlock($1, $2::int)', [REENCODE_LOCK, collectionId]);
      } catch {
        // the connection is gone, and its locks with it
      }
    },
  };
}
