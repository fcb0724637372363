/**
 * The repositories over SQLite: collections and their documents (text, metadata, binary and
 * int8 codes). Every call is synchronous and short (better-sqlite3 blocks the event loop);
 * statements are prepared once. Writes of a batch happen in one transaction, so a crash
 * leaves either the whole batch or none of it.
 */
import type Database from 'better-sqlite3';
import { errors } from '../errors.js';
import type { Db } from './database.js';
import { storageGuard } from './storage.js';

export interface CollectionRow {
  id: number;
  name: string;
  fingerprint: string;
  dimension: number;
  created_at: string;
  document_count: number;
  payload_bytes: number;
  /** Fingerprint this collection is being re-encoded to, or null. */
  reencode_target: string | null;
}

/** A document to write: its codes were computed from `text` by the collection's model. */
export interface DocumentWrite {
  docId: string;
  text: string;
  /** JSON text of an object. */
  metadata: string;
  textSha256: string;
  binaryCode: Uint8Array;
  int8Code: Int8Array;
}

/** A document whose text (and so codes) must stay as planned; only its metadata may change. */
export interface MetadataWrite {
  docId: string;
  metadata: string;
  /** The write aborts with StaleWriteError when the stored text no longer has this hash. */
  expectedTextSha256: string;
}

/** What a document is stored as, for deciding what an upsert must re-encode. */
export interface StoredDigest {
  textSha256: string;
  metadata: string;
}

export interface StoredDocument {
  rowid: number;
  docId: string;
  text: string;
  metadata: string;
  updatedAt: string;
}

/** Equality filter on top-level metadata keys; values are scalars. */
export interface StagedCodes {
  rowid: number;
  textSha256: string;
  binaryCode: Uint8Array;
  int8Code: Int8Array;
}

export type MetadataFilter = Record<string, string | number | boolean | null>;

/** Thrown inside a write transaction when a planned document changed meanwhile: plan again. */
export class StaleWriteError extends Error {
  override name = 'StaleWriteError';
}

/** Rowids must fit the in-memory index's Uint32Array: about 4.3 billion inserts per database. */
export const MAX_ROWID = 0xffffffff;

export interface Store {
  readonly db: Db;
  createCollection(name: string, fingerprint: string, dimension: number): CollectionRow;
  getCollection(name: string): CollectionRow | undefined;
  getCollectionById(id: number): CollectionRow | undefined;
  listCollections(): CollectionRow[];
  /** Deletes the collection and its documents; false if there was none. */
  deleteCollection(id: number): boolean;
  /** The stored hash and metadata of those of `docIds` that exist. */
  digests(collectionId: number, docIds: readonly string[]): Map<string, StoredDigest>;
  /**
   * Writes a batch in one transaction: `documents` are inserted or replaced in place (an
   * existing id keeps its rowid), `metadataOnly` only get new metadata. Returns the rowids of
   * `documents` in order. Throws collectionNotFound if the collection was deleted meanwhile,
   * StaleWriteError if a metadata-only document changed text meanwhile (nothing written).
   */
  writeBatch(collectionId: number, documents: readonly DocumentWrite[], metadataOnly: readonly MetadataWrite[]): number[];
  getDocument(collectionId: number, docId: string): StoredDocument | undefined;
  /** Deletes the documents in one transaction; returns the rowids and ids of those that existed. */
  deleteDocuments(collectionId: number, docIds: readonly string[]): { rowids: number[]; deleted: string[] };
  /** Rowids of the collection's documents whose metadata matches, ascending. */
  filterRowids(collectionId: number, filter: MetadataFilter): number[];
  /** int8 codes of the given rowids, in their order (undefined for a rowid that is gone). */
  int8Codes(rowids: readonly number[]): (Buffer | undefined)[];
  /** Id, text and metadata of the given rowids, in their order. */
  documentsByRowid(rowids: readonly number[]): (StoredDocument | undefined)[];
  /** Every (rowid, binary code) of a collection in rowid order: what its index is loaded from. */
  iterateBinaryCodes(collectionId: number): IterableIterator<[number, Buffer]>;
  /** Every document with both codes, in rowid order (consistency checks, re-encoding). */
  iterateDocuments(collectionId: number): IterableIterator<StoredDocument & { textSha256: string; binaryCode: Buffer; int8Code: Buffer }>;
  /** COUNT(*) and the summed payload, computed from the rows (the counters' reference). */
  recount(collectionId: number): { documents: number; payloadBytes: number };
  /** Re-encoding (see migrations/002-reencode.sql): marks the target, or clears it with null. */
  setReencodeTarget(collectionId: number, fingerprint: string | null): void;
  /** Drops staged codes of this collection that were made for another fingerprint. */
  clearStaging(collectionId: number, keepFingerprint: string): void;
  /** Staged (rowid, binary code) pairs in rowid order: the new index when a re-encoding resumes. */
  iterateStagedBinaryCodes(collectionId: number, fingerprint: string): IterableIterator<[number, Buffer]>;
  /** Documents without staged codes of their current text, in rowid order. */
  pendingReencode(collectionId: number, fingerprint: string, limit: number): { rowid: number; text: string; textSha256: string }[];
  countPendingReencode(collectionId: number, fingerprint: string): number;
  /** Stages codes for rows that still exist; returns the rowids staged (a row deleted meanwhile is skipped). */
  stageCodes(collectionId: number, fingerprint: string, rows: readonly StagedCodes[]): number[];
  /** Swaps every staged code in, binds the collection to `fingerprint` and clears the staging, in one transaction. */
  finishReencode(collectionId: number, fingerprint: string, dimension: number): void;
  /** Bytes of the whole database file (all collections), from SQLite's page count. */
  databaseBytes(): number;
  /** Throws 507 QEMBED_STORAGE_FULL while the database found no room for its last write (storage.ts). */
  ensureRoom(): void;
}

function isUniqueViolation(e: unknown): boolean {
  return (e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE';
}

function isForeignKeyViolation(e: unknown): boolean {
  return (e as { code?: string }).code === 'SQLITE_CONSTRAINT_FOREIGNKEY';
}

/** A JSON path for one top-level key: `$."key"`. Keys holding `"` or `\` are refused upstream. */
export function metadataPath(key: string): string {
  return `$."${key}"`;
}

export function createStore(db: Db): Store {
  const now = () => new Date().toISOString();
  const storage = storageGuard(db);
  const s = {
    insertCollection: db.prepare<[string, string, number, string]>(
      'INSERT INTO collections (name, fingerprint, dimension, created_at) VALUES (?, ?, ?, ?) RETURNING *',
    ),
    collectionByName: db.prepare<[string]>('SELECT * FROM collections WHERE name = ?'),
    collectionById: db.prepare<[number]>('SELECT * FROM collections WHERE id = ?'),
    collections: db.prepare('SELECT * FROM collections ORDER BY name'),
    deleteCollection: db.prepare<[number]>('DELETE FROM collections WHERE id = ?'),
    digests: db.prepare<[number, string]>(
      'SELECT doc_id, text_sha256, metadata FROM documents WHERE collection_id = ? AND doc_id IN (SELECT value FROM json_each(?))',
    ),
    upsert: db.prepare<[number, string, string, string, string, Uint8Array, Int8Array, string]>(
      `INSERT INTO documents (collection_id, doc_id, text, metadata, text_sha256, binary_code, int8_code, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (collection_id, doc_id) DO UPDATE SET text = excluded.text, metadata = excluded.metadata,
         text_sha256 = excluded.text_sha256, binary_code = excluded.binary_code, int8_code = excluded.int8_code,
         updated_at = excluded.updated_at
       RETURNING rowid`,
    ),
    updateMetadata: db.prepare<[string, string, number, string, string]>(
      'UPDATE documents SET metadata = ?, updated_at = ? WHERE collection_id = ? AND doc_id = ? AND text_sha256 = ?',
    ),
    document: db.prepare<[number, string]>(
      'SELECT rowid, doc_id, text, metadata, updated_at FROM documents WHERE collection_id = ? AND doc_id = ?',
    ),
    deleteDocument: db.prepare<[number, string]>('DELETE FROM documents WHERE collection_id = ? AND doc_id = ? RETURNING rowid'),
    int8: db.prepare<[string]>('SELECT rowid, int8_code FROM documents WHERE rowid IN (SELECT value FROM json_each(?))').raw(true),
    byRowid: db.prepare<[string]>(
      'SELECT rowid, doc_id, text, metadata, updated_at FROM documents WHERE rowid IN (SELECT value FROM json_each(?))',
    ),
    binaryCodes: db.prepare<[number]>('SELECT rowid, binary_code FROM documents WHERE collection_id = ? ORDER BY rowid').raw(true),
    allDocuments: db.prepare<[number]>(
      `SELECT rowid, doc_id, text, metadata, updated_at, text_sha256, binary_code, int8_code
       FROM documents WHERE collection_id = ? ORDER BY rowid`,
    ),
    recount: db.prepare<[number]>('SELECT count(*) AS documents, coalesce(sum(bytes), 0) AS payloadBytes FROM document_payload WHERE collection_id = ?'),
    pages: db.prepare('SELECT page_count * page_size AS bytes FROM pragma_page_count(), pragma_page_size()'),
    setTarget: db.prepare<[string | null, number]>('UPDATE collections SET reencode_target = ? WHERE id = ?'),
    clearStaging: db.prepare<[number, string]>('DELETE FROM reencode_codes WHERE collection_id = ? AND fingerprint <> ?'),
    stagedBinary: db.prepare<[number, string]>('SELECT rowid, binary_code FROM reencode_codes WHERE collection_id = ? AND fingerprint = ? ORDER BY rowid').raw(true),
    pending: db.prepare<[string, number, number]>(
      `SELECT d.rowid AS rowid, d.text AS text, d.text_sha256 AS textSha256 FROM documents d
       LEFT JOIN reencode_codes r ON r.rowid = d.rowid AND r.fingerprint = ? AND r.text_sha256 = d.text_sha256
       WHERE d.collection_id = ? AND r.rowid IS NULL ORDER BY d.rowid LIMIT ?`,
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
      `UPDATE documents SET binary_code = r.binary_code, int8_code = r.int8_code
       FROM reencode_codes r WHERE r.rowid = documents.rowid AND r.collection_id = ? AND r.fingerprint = ?`,
    ),
    rebind: db.prepare<[string, number, number]>('UPDATE collections SET fingerprint = ?, dimension = ?, reencode_target = NULL WHERE id = ?'),
    dropStaging: db.prepare<[number]>('DELETE FROM reencode_codes WHERE collection_id = ?'),
  };

  const stageCodes = db.transaction((collectionId: number, fingerprint: string, rows: readonly StagedCodes[]) => {
    const staged: number[] = [];
    for (const r of rows) {
      if (s.stage.run(r.rowid, collectionId, fingerprint, r.textSha256, r.binaryCode, r.int8Code, r.rowid, collectionId).changes === 1) staged.push(r.rowid);
    }
    return staged;
  });

  const finishReencode = db.transaction((collectionId: number, fingerprint: string, dimension: number) => {
    const pending = s.countPending.get(fingerprint, collectionId) as number;
    if (pending !== 0) throw new Error(`${pending} documents have no staged codes yet`);
    s.swapCodes.run(collectionId, fingerprint);
    s.rebind.run(fingerprint, dimension, collectionId);
    s.dropStaging.run(collectionId);
  });

  type DocRow = { rowid: number; doc_id: string; text: string; metadata: string; updated_at: string };
  const toDocument = (r: DocRow): StoredDocument => ({ rowid: r.rowid, docId: r.doc_id, text: r.text, metadata: r.metadata, updatedAt: r.updated_at });

  const writeBatch = db.transaction((collectionId: number, documents: readonly DocumentWrite[], metadataOnly: readonly MetadataWrite[]) => {
    const at = now();
    for (const m of metadataOnly) {
      if (s.updateMetadata.run(m.metadata, at, collectionId, m.docId, m.expectedTextSha256).changes !== 1) {
        throw new StaleWriteError(`document "${m.docId}" changed while the batch was being encoded`);
      }
    }
    const rowids: number[] = [];
    for (const d of documents) {
      const { rowid } = s.upsert.get(collectionId, d.docId, d.text, d.metadata, d.textSha256, d.binaryCode, d.int8Code, at) as { rowid: number };
      if (rowid > MAX_ROWID) throw errors.internal(`the database has used up its ${MAX_ROWID} document rowids`);
      rowids.push(rowid);
    }
    return rowids;
  });

  const deleteDocuments = db.transaction((collectionId: number, docIds: readonly string[]) => {
    const rowids: number[] = [];
    const deleted: string[] = [];
    for (const id of docIds) {
      const row = s.deleteDocument.get(collectionId, id) as { rowid: number } | undefined;
      if (row) {
        rowids.push(row.rowid);
        deleted.push(id);
      }
    }
    return { rowids, deleted };
  });

  /** SQL and parameters of one filter key: equality with the JSON type respected (true ≠ 1). */
  const condition = (key: string, value: string | number | boolean | null): [string, unknown[]] => {
    const p = metadataPath(key);
    if (value === null) return ["json_type(metadata, ?) = 'null'", [p]];
    if (typeof value === 'boolean') return [`json_type(metadata, ?) = '${value ? 'true' : 'false'}'`, [p]];
    if (typeof value === 'number') return ["json_type(metadata, ?) IN ('integer', 'real') AND json_extract(metadata, ?) = ?", [p, p, value]];
    return ["json_type(metadata, ?) = 'text' AND json_extract(metadata, ?) = ?", [p, p, value]];
  };
  const filterStatements = new Map<string, Database.Statement<unknown[]>>();

  const byRowids = <T>(rowids: readonly number[], rows: T[], rowidOf: (r: T) => number): (T | undefined)[] => {
    const map = new Map<number, T>();
    for (const r of rows) map.set(rowidOf(r), r);
    return rowids.map((id) => map.get(id));
  };

  return {
    db,
    createCollection(name, fingerprint, dimension) {
      try {
        return storage.write(() => s.insertCollection.get(name, fingerprint, dimension, now()) as CollectionRow);
      } catch (e) {
        if (isUniqueViolation(e)) throw errors.collectionExists(`collection "${name}" already exists`);
        throw e;
      }
    },
    getCollection: (name) => s.collectionByName.get(name) as CollectionRow | undefined,
    getCollectionById: (id) => s.collectionById.get(id) as CollectionRow | undefined,
    listCollections: () => s.collections.all() as CollectionRow[],
    deleteCollection: (id) => storage.write(() => s.deleteCollection.run(id).changes === 1),
    digests(collectionId, docIds) {
      const rows = s.digests.all(collectionId, JSON.stringify(docIds)) as { doc_id: string; text_sha256: string; metadata: string }[];
      return new Map(rows.map((r) => [r.doc_id, { textSha256: r.text_sha256, metadata: r.metadata }]));
    },
    writeBatch(collectionId, documents, metadataOnly) {
      try {
        return storage.write(() => writeBatch(collectionId, documents, metadataOnly));
      } catch (e) {
        if (isForeignKeyViolation(e)) throw errors.collectionNotFound('the collection was deleted while the batch was being encoded');
        throw e;
      }
    },
    getDocument(collectionId, docId) {
      const row = s.document.get(collectionId, docId) as DocRow | undefined;
      return row && toDocument(row);
    },
    deleteDocuments: (collectionId, docIds) => storage.write(() => deleteDocuments(collectionId, docIds)),
    filterRowids(collectionId, filter) {
      const keys = Object.keys(filter).sort();
      const parts = keys.map((k) => condition(k, filter[k]!));
      const sql = `SELECT rowid FROM documents WHERE collection_id = ?${parts.map(([c]) => ` AND ${c}`).join('')} ORDER BY rowid`;
      let stmt = filterStatements.get(sql);
      if (!stmt) {
        // The SQL depends only on the keys' value types, so the cache stays small.
        stmt = db.prepare<unknown[]>(sql).pluck(true);
        if (filterStatements.size > 256) filterStatements.clear();
        filterStatements.set(sql, stmt);
      }
      return stmt.all(collectionId, ...parts.flatMap(([, params]) => params)) as number[];
    },
    int8Codes(rowids) {
      const rows = s.int8.all(JSON.stringify(rowids)) as [number, Buffer][];
      return byRowids(rowids, rows, (r) => r[0]).map((r) => r?.[1]);
    },
    documentsByRowid(rowids) {
      const rows = s.byRowid.all(JSON.stringify(rowids)) as DocRow[];
      return byRowids(rowids, rows, (r) => r.rowid).map((r) => r && toDocument(r));
    },
    iterateBinaryCodes: (collectionId) => s.binaryCodes.iterate(collectionId) as IterableIterator<[number, Buffer]>,
    *iterateDocuments(collectionId) {
      for (const r of s.allDocuments.iterate(collectionId) as IterableIterator<DocRow & { text_sha256: string; binary_code: Buffer; int8_code: Buffer }>) {
        yield { ...toDocument(r), textSha256: r.text_sha256, binaryCode: r.binary_code, int8Code: r.int8_code };
      }
    },
    recount: (collectionId) => s.recount.get(collectionId) as { documents: number; payloadBytes: number },
    databaseBytes: () => (s.pages.get() as { bytes: number }).bytes,
    setReencodeTarget: (collectionId, fingerprint) => void storage.write(() => s.setTarget.run(fingerprint, collectionId)),
    clearStaging: (collectionId, keep) => void storage.write(() => s.clearStaging.run(collectionId, keep)),
    iterateStagedBinaryCodes: (collectionId, fingerprint) => s.stagedBinary.iterate(collectionId, fingerprint) as IterableIterator<[number, Buffer]>,
    pendingReencode: (collectionId, fingerprint, limit) =>
      s.pending.all(fingerprint, collectionId, limit) as { rowid: number; text: string; textSha256: string }[],
    countPendingReencode: (collectionId, fingerprint) => s.countPending.get(fingerprint, collectionId) as number,
    stageCodes: (collectionId, fingerprint, rows) => storage.write(() => stageCodes(collectionId, fingerprint, rows)),
    finishReencode: (collectionId, fingerprint, dimension) => storage.write(() => finishReencode(collectionId, fingerprint, dimension)),
    ensureRoom: () => storage.ensureRoom(),
  };
}
