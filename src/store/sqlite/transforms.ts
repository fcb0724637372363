/**
 * Transforms over SQLite (migrations/008-transforms.sql): fitted transforms kept with their
 * collection, and a switch of the first-stage codes staged in `transform_codes` beside the served
 * ones, keyed by rowid and text hash, then swapped in by one transaction.
 */
import type { Db } from '../database.js';
import type { StorageGuard } from '../storage.js';
import type { Changed, StagedFirstCode, StoredTransform, TransformInfo, TransformRepository } from '../store.js';
import { floatsOf, TRANSFORM_INFO_COLUMNS, type TransformRow, toTransform, toTransformInfo } from '../transform-rows.js';

export function createTransformRepository(db: Db, storage: StorageGuard): TransformRepository {
  const s = {
    save: db.prepare<[number, string, string, number, number, Uint8Array, Uint8Array, string, string]>(
      `INSERT INTO transforms (collection_id, fingerprint, method, bits, dimension, mean, matrix, summary, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (collection_id, fingerprint) DO UPDATE SET summary = excluded.summary`,
    ),
    get: db.prepare<[number, string]>('SELECT * FROM transforms WHERE collection_id = ? AND fingerprint = ?'),
    list: db.prepare<[number]>(`SELECT ${TRANSFORM_INFO_COLUMNS} FROM transforms WHERE collection_id = ? ORDER BY created_at DESC, fingerprint`),
    summary: db.prepare<[string, number, string]>('UPDATE transforms SET summary = ? WHERE collection_id = ? AND fingerprint = ?'),
    setTarget: db.prepare<[string | null, number]>('UPDATE collections SET transform_target = ? WHERE id = ?'),
    clearOthers: db.prepare<[number, string]>('DELETE FROM transform_codes WHERE collection_id = ? AND transform <> ?'),
    // `+collection_id`: walk the rowid key from the cursor, not the (collection_id, doc_id) index and a sort of the whole collection per step.
    pending: db.prepare<[string, number, number, number]>(
      `SELECT d.rowid AS rowid, d.text_sha256 AS textSha256, d.int8_code AS int8Code FROM documents d
       LEFT JOIN transform_codes t ON t.rowid = d.rowid AND t.transform = ? AND t.text_sha256 = d.text_sha256
       WHERE +d.collection_id = ? AND d.rowid > ? AND t.rowid IS NULL ORDER BY d.rowid LIMIT ?`,
    ),
    countPending: db
      .prepare<[string, number]>(
        `SELECT count(*) FROM documents d
         LEFT JOIN transform_codes t ON t.rowid = d.rowid AND t.transform = ? AND t.text_sha256 = d.text_sha256
         WHERE d.collection_id = ? AND t.rowid IS NULL`,
      )
      .pluck(true),
    stage: db.prepare<[number, number, string, string, Uint8Array, number, number]>(
      `INSERT INTO transform_codes (rowid, collection_id, transform, text_sha256, code)
       SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM documents WHERE rowid = ? AND collection_id = ?)
       ON CONFLICT (rowid) DO UPDATE SET transform = excluded.transform, text_sha256 = excluded.text_sha256, code = excluded.code`,
    ),
    staged: db.prepare<[number, string]>('SELECT rowid, code FROM transform_codes WHERE collection_id = ? AND transform = ? ORDER BY rowid').raw(true),
    swapIn: db.prepare<[number, string]>(
      `UPDATE documents SET first_code = t.code FROM transform_codes t
       WHERE t.rowid = documents.rowid AND t.collection_id = ? AND t.transform = ?`,
    ),
    firstDims: db.prepare<[number]>('UPDATE documents SET first_code = NULL WHERE collection_id = ? AND first_code IS NOT NULL'),
    serve: db.prepare<[string | null, number]>('UPDATE collections SET transform = ?, transform_target = NULL, generation = generation + 1 WHERE id = ?'),
    drop: db.prepare<[number]>('DELETE FROM transform_codes WHERE collection_id = ?'),
  };

  const begin = db.transaction((collectionId: number, fingerprint: string) => {
    s.setTarget.run(fingerprint, collectionId);
    s.clearOthers.run(collectionId, fingerprint);
  });
  const stage = db.transaction((collectionId: number, fingerprint: string, rows: readonly StagedFirstCode[]): Changed & { rowids: number[] } => {
    const staged = rows.filter((r) => s.stage.run(r.rowid, collectionId, fingerprint, r.textSha256, r.code, r.rowid, collectionId).changes === 1);
    const entries = staged.map((r) => ({ rowid: r.rowid, code: r.code }));
    return { rowids: entries.map((e) => e.rowid), changes: [{ type: 'staged', collectionId, entries }] };
  });
  const finish = db.transaction((collectionId: number, fingerprint: string | null) => {
    if (fingerprint === null) s.firstDims.run(collectionId);
    else {
      const pending = s.countPending.get(fingerprint, collectionId) as number;
      if (pending !== 0) throw new Error(`${pending} documents have no staged codes yet`);
      s.swapIn.run(collectionId, fingerprint);
    }
    s.serve.run(fingerprint, collectionId);
    s.drop.run(collectionId);
  });
  const abandon = db.transaction((collectionId: number) => {
    s.setTarget.run(null, collectionId);
    s.drop.run(collectionId);
  });

  return {
    saveTransform(t: StoredTransform) {
      storage.write(() =>
        s.save.run(t.collectionId, t.fingerprint, t.method, t.bits, t.dimension, floatsOf(t.mean), floatsOf(t.matrix), t.summary, t.createdAt),
      );
    },
    getTransform(collectionId, fingerprint) {
      const row = s.get.get(collectionId, fingerprint) as TransformRow | undefined;
      return row && toTransform(row);
    },
    listTransforms: (collectionId) => (s.list.all(collectionId) as TransformRow[]).map(toTransformInfo) as TransformInfo[],
    setTransformSummary(collectionId, fingerprint, summary) {
      storage.write(() => s.summary.run(summary, collectionId, fingerprint));
    },
    beginTransformStaging(collectionId, fingerprint) {
      storage.write(() => begin(collectionId, fingerprint));
      return { changes: [{ type: 'staging', collectionId, fingerprint, transform: true }] };
    },
    pendingTransformCodes: (collectionId, fingerprint, limit, afterRowid) =>
      s.pending.all(fingerprint, collectionId, afterRowid, limit) as { rowid: number; textSha256: string; int8Code: Buffer }[],
    countPendingTransformCodes: (collectionId, fingerprint) => s.countPending.get(fingerprint, collectionId) as number,
    stageTransformCodes: (collectionId, fingerprint, rows) => storage.write(() => stage(collectionId, fingerprint, rows)),
    stagedTransformCodes: (collectionId, fingerprint) => s.staged.iterate(collectionId, fingerprint) as IterableIterator<[number, Buffer]>,
    finishTransform(collectionId, fingerprint) {
      storage.write(() => finish(collectionId, fingerprint));
      return { changes: [fingerprint === null ? { type: 'dropped', collectionId } : { type: 'swapped', collectionId }] };
    },
    abandonTransform(collectionId) {
      storage.write(() => abandon(collectionId));
      return { changes: [{ type: 'unstaged', collectionId }] };
    },
  };
}
