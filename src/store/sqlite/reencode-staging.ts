/**
 * Re-encode staging over SQLite (migrations/002-reencode.sql): codes of the target model are
 * staged in `reencode_codes` beside the current ones, keyed by rowid and the text hash they were
 * made from, then swapped in by one transaction.
 */
import type { Db } from '../database.js';
import type { StorageGuard } from '../storage.js';
import type { Changed, ReencodeStaging, StagedCodes } from '../store.js';

/** The SQLite staging; claiming a re-encoding is sqlite-store.ts's (one process holds the file: it always may). */
export type SqliteReencodeStaging = Omit<ReencodeStaging, 'claimReencode' | 'releaseReencode'>;

export function createReencodeStaging(db: Db, storage: StorageGuard): SqliteReencodeStaging {
  const s = {
    setTarget: db.prepare<[string | null, number]>('UPDATE collections SET reencode_target = ? WHERE id = ?'),
    clear: db.prepare<[number, string]>('DELETE FROM reencode_codes WHERE collection_id = ? AND fingerprint <> ?'),
    stagedBinary: db.prepare<[number, string]>('SELECT rowid, binary_code FROM reencode_codes WHERE collection_id = ? AND fingerprint = ? ORDER BY rowid').raw(true),
    // From a rowid on (a cursor), so that a pass over the collection reads each row once; `+collection_id`:
    // walk the rowid key from the cursor instead of the (collection_id, doc_id) index and a sort of the whole collection per step.
    pending: db.prepare<[string, number, number, number]>(
      `SELECT d.rowid AS rowid, d.text AS text, d.text_sha256 AS textSha256 FROM documents d
       LEFT JOIN reencode_codes r ON r.rowid = d.rowid AND r.fingerprint = ? AND r.text_sha256 = d.text_sha256
       WHERE +d.collection_id = ? AND d.rowid > ? AND r.rowid IS NULL ORDER BY d.rowid LIMIT ?`,
    ),
    countPending: db.prepare<[string, number]>(
      `SELECT count(*) FROM documents d
       LEFT JOIN reencode_codes r ON r.rowid = d.rowid AND r.fingerprint = ? AND r.text_sha256 = d.text_sha256
       WHERE d.collection_id = ? AND r.rowid IS NULL`,
    ).pluck(true),
    stage: db.prepare<[number, number, string, string, Uint8Array, Int8Array, number, number]>(
      `INSERT INTO reencode_codes (rowid, collection_id, fingerprint, text_sha256, binary_code, int8_code)
       SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM documents WHERE rowid = ? AND collection_id = ?)
       ON CONFLICT (rowid) DO UPDATE SET fingerprint = excluded.fingerprint, text_sha256 = excluded.text_sha256,
         binary_code = excluded.binary_code, int8_code = excluded.int8_code`,
    ),
    swapCodes: db.prepare<[number, string]>(
      `UPDATE documents SET binary_code = r.binary_code, int8_code = r.int8_code, first_code = NULL
       FROM reencode_codes r WHERE r.rowid = documents.rowid AND r.collection_id = ? AND r.fingerprint = ?`,
    ),
    // The new model's codes are first dims: transforms fitted in the old model's space are dropped.
    rebind: db.prepare<[string, number, number]>(
      'UPDATE collections SET fingerprint = ?, dimension = ?, reencode_target = NULL, transform = NULL, transform_target = NULL, generation = generation + 1 WHERE id = ?',
    ),
    drop: db.prepare<[number]>('DELETE FROM reencode_codes WHERE collection_id = ?'),
    dropTransforms: db.prepare<[number]>('DELETE FROM transforms WHERE collection_id = ?'),
    dropTransformCodes: db.prepare<[number]>('DELETE FROM transform_codes WHERE collection_id = ?'),
  };

  const stageCodes = db.transaction((collectionId: number, fingerprint: string, rows: readonly StagedCodes[]): Changed & { rowids: number[] } => {
    const staged = rows.filter((r) => s.stage.run(r.rowid, collectionId, fingerprint, r.textSha256, r.binaryCode, r.int8Code, r.rowid, collectionId).changes === 1);
    const entries = staged.map((r) => ({ rowid: r.rowid, code: r.binaryCode }));
    return { rowids: entries.map((e) => e.rowid), changes: [{ type: 'staged', collectionId, entries }] };
  });

  const beginStaging = db.transaction((collectionId: number, fingerprint: string) => {
    s.setTarget.run(fingerprint, collectionId);
    s.clear.run(collectionId, fingerprint);
  });

  const finishReencode = db.transaction((collectionId: number, fingerprint: string, dimension: number) => {
    const pending = s.countPending.get(fingerprint, collectionId) as number;
    if (pending !== 0) throw new Error(`${pending} documents have no staged codes yet`);
    s.swapCodes.run(collectionId, fingerprint);
    s.rebind.run(fingerprint, dimension, collectionId);
    s.drop.run(collectionId);
    s.dropTransformCodes.run(collectionId);
    s.dropTransforms.run(collectionId);
  });

  return {
    beginStaging(collectionId, fingerprint) {
      storage.write(() => beginStaging(collectionId, fingerprint));
      return { changes: [{ type: 'staging', collectionId, fingerprint }] };
    },
    stagedBinaryCodes: (collectionId, fingerprint) => s.stagedBinary.iterate(collectionId, fingerprint) as IterableIterator<[number, Buffer]>,
    pendingReencode: (collectionId, fingerprint, limit, afterRowid = 0) =>
      s.pending.all(fingerprint, collectionId, afterRowid, limit) as { rowid: number; text: string; textSha256: string }[],
    countPendingReencode: (collectionId, fingerprint) => s.countPending.get(fingerprint, collectionId) as number,
    stageCodes: (collectionId, fingerprint, rows) => storage.write(() => stageCodes(collectionId, fingerprint, rows)),
    finishReencode(collectionId, fingerprint, dimension) {
      storage.write(() => finishReencode(collectionId, fingerprint, dimension));
      return { changes: [{ type: 'swapped', collectionId }] };
    },
  };
}
