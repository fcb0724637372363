/**
 * The repositories over SQLite: collections and their documents (text, metadata, binary and
 * int8 codes). Every call is synchronous and short (better-sqlite3 blocks the event loop);
 * statements are prepared once. Writes of a batch happen in one transaction, so a crash
 * leaves either the whole batch or none of it.
 */
import type Database from 'better-sqlite3';
import { errors } from '../errors.js';
import type { Db } from './database.js';

export interface CollectionRow {
  id: number;
  name: string;
  fingerprint: string;
  dimension: number;
  created_at: string;
  document_count: number;
  payload_bytes: number;
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
  /** Bytes of the whole database file (all collections), from SQLite's page count. */
  databaseBytes(): number;
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
  };

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
        return s.insertCollection.get(name, fingerprint, dimension, now()) as CollectionRow;
      } catch (e) {
        if (isUniqueViolation(e)) throw errors.collectionExists(`collection "${name}" already exists`);
        throw e;
      }
    },
    getCollection: (name) => s.collectionByName.get(name) as CollectionRow | undefined,
    getCollectionById: (id) => s.collectionById.get(id) as CollectionRow | undefined,
    listCollections: () => s.collections.all() as CollectionRow[],
    deleteCollection: (id) => s.deleteCollection.run(id).changes === 1,
    digests(collectionId, docIds) {
      const rows = s.digests.all(collectionId, JSON.stringify(docIds)) as { doc_id: string; text_sha256: string; metadata: string }[];
      return new Map(rows.map((r) => [r.doc_id, { textSha256: r.text_sha256, metadata: r.metadata }]));
    },
    writeBatch(collectionId, documents, metadataOnly) {
      try {
        return writeBatch(collectionId, documents, metadataOnly);
      } catch (e) {
        if (isForeignKeyViolation(e)) throw errors.collectionNotFound('the collection was deleted while the batch was being encoded');
        throw e;
      }
    },
    getDocument(collectionId, docId) {
      const row = s.document.get(collectionId, docId) as DocRow | undefined;
      return row && toDocument(row);
    },
    deleteDocuments: (collectionId, docIds) => deleteDocuments(collectionId, docIds),
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
  };
}
