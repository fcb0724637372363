/**
 * Documents over SQLite: one row per document with its text, metadata, text hash and both
 * codes. A batch is written in one transaction; an existing id keeps its rowid.
 */
import { errors } from '../../errors.js';
import type { Db } from '../database.js';
import type { StorageGuard } from '../storage.js';
import { type Changed, checkBasis, type DocumentPage, type DocumentPageRequest, type DocumentRepository, type DocumentWrite, MAX_ROWID, type MetadataWrite, StaleWriteError, type StoredDocument, type WriteBasis } from '../store.js';
import { createFilterQueries } from './filter-sql.js';

const isForeignKeyViolation = (e: unknown) => (e as { code?: string }).code === 'SQLITE_CONSTRAINT_FOREIGNKEY';

type DocRow = { rowid: number; doc_id: string; text: string; metadata: string; updated_at: string; text_sha256: string };
const toDocument = (r: DocRow): StoredDocument => ({ rowid: r.rowid, docId: r.doc_id, text: r.text, metadata: r.metadata, updatedAt: r.updated_at, textSha256: r.text_sha256 });

/** `rows` put in the order of `rowids` (undefined where a rowid has no row). */
function inRowidOrder<T>(rowids: readonly number[], rows: T[], rowidOf: (r: T) => number): (T | undefined)[] {
  const map = new Map<number, T>();
  for (const r of rows) map.set(rowidOf(r), r);
  return rowids.map((id) => map.get(id));
}

export function createDocumentRepository(db: Db, storage: StorageGuard): DocumentRepository {
  const s = {
    digests: db.prepare<[number, string]>(
      'SELECT doc_id, text_sha256, metadata FROM documents WHERE collection_id = ? AND doc_id IN (SELECT value FROM json_each(?))',
    ),
    upsert: db.prepare<[number, string, string, string, string, Uint8Array, Int8Array, Uint8Array | null, string]>(
      `INSERT INTO documents (collection_id, doc_id, text, metadata, text_sha256, binary_code, int8_code, first_code, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (collection_id, doc_id) DO UPDATE SET text = excluded.text, metadata = excluded.metadata,
         text_sha256 = excluded.text_sha256, binary_code = excluded.binary_code, int8_code = excluded.int8_code,
         first_code = excluded.first_code, updated_at = excluded.updated_at
       RETURNING rowid`,
    ),
    updateMetadata: db.prepare<[string, string, number, string, string]>(
      'UPDATE documents SET metadata = ?, updated_at = ? WHERE collection_id = ? AND doc_id = ? AND text_sha256 = ?',
    ),
    document: db.prepare<[number, string]>(
      'SELECT rowid, doc_id, text, metadata, updated_at, text_sha256 FROM documents WHERE collection_id = ? AND doc_id = ?',
    ),
    delete: db.prepare<[number, string]>('DELETE FROM documents WHERE collection_id = ? AND doc_id = ? RETURNING rowid'),
    int8: db.prepare<[string]>('SELECT rowid, int8_code FROM documents WHERE rowid IN (SELECT value FROM json_each(?))').raw(true),
    // `+collection_id`: walk the rowid key in order instead of the (collection_id, doc_id) index and a sort per page.
    int8Page: db.prepare<[number, number, number]>('SELECT rowid, int8_code FROM documents WHERE rowid > ? AND +collection_id = ? ORDER BY rowid LIMIT ?').raw(true),
    byRowid: db.prepare<[string]>(
      'SELECT rowid, doc_id, text, metadata, updated_at, text_sha256 FROM documents WHERE rowid IN (SELECT value FROM json_each(?))',
    ),
    vectorDocuments: db.prepare<[number]>("SELECT count(*) FROM documents WHERE collection_id = ? AND text_sha256 LIKE 'vector:%'").pluck(true),
    binaryCodes: db.prepare<[number]>('SELECT rowid, coalesce(first_code, binary_code) FROM documents WHERE collection_id = ? ORDER BY rowid').raw(true),
    all: db.prepare<[number]>(
      `SELECT rowid, doc_id, text, metadata, updated_at, text_sha256, binary_code, int8_code, first_code
       FROM documents WHERE collection_id = ? ORDER BY rowid`,
    ),
  };

  const filters = createFilterQueries(db);
  const byRowid = (rowids: readonly number[]): (StoredDocument | undefined)[] => {
    const rows = s.byRowid.all(JSON.stringify(rowids)) as DocRow[];
    return inRowidOrder(rowids, rows, (r) => r.rowid).map((r) => r && toDocument(r));
  };
  // A transaction only for its snapshot: the page and the total of the same state, even with another process writing the file.
  const listDocuments = db.transaction((collectionId: number, { afterRowid, limit, filter = {} }: DocumentPageRequest): DocumentPage => {
    // In one snapshot every rowid of the page still has its row.
    const documents = byRowid(filters.page(collectionId, filter, afterRowid, limit)) as StoredDocument[];
    return { documents, total: filters.count(collectionId, filter) };
  });

  const bump = db.prepare<[number]>('UPDATE collections SET generation = generation + 1 WHERE id = ?');
  const codesOf = db.prepare<[number]>('SELECT fingerprint, transform FROM collections WHERE id = ?');

  const writeBatch = db.transaction((collectionId: number, documents: readonly DocumentWrite[], metadataOnly: readonly MetadataWrite[], basis?: WriteBasis): Changed & { rowids: number[] } => {
    if (basis) checkBasis(codesOf.get(collectionId) as WriteBasis | undefined, basis);
    const at = new Date().toISOString();
    for (const m of metadataOnly) {
      if (s.updateMetadata.run(m.metadata, at, collectionId, m.docId, m.expectedTextSha256).changes !== 1) {
        throw new StaleWriteError(`document "${m.docId}" changed while the batch was being encoded`);
      }
    }
    const rowids: number[] = [];
    for (const d of documents) {
      const { rowid } = s.upsert.get(collectionId, d.docId, d.text, d.metadata, d.textSha256, d.binaryCode, d.int8Code, d.firstCode ?? null, at) as { rowid: number };
      if (rowid > MAX_ROWID) throw errors.internal(`the database has used up its ${MAX_ROWID} document rowids`);
      rowids.push(rowid);
    }
    if (documents.length === 0) return { rowids, changes: [] };
    bump.run(collectionId);
    const entries = rowids.map((rowid, i) => ({ rowid, code: documents[i]!.firstCode ?? documents[i]!.binaryCode }));
    return { rowids, changes: [{ type: 'written', collectionId, entries }] };
  });

  const deleteDocuments = db.transaction((collectionId: number, docIds: readonly string[]): Changed & { rowids: number[]; deleted: string[] } => {
    const rowids: number[] = [];
    const deleted: string[] = [];
    for (const id of docIds) {
      const row = s.delete.get(collectionId, id) as { rowid: number } | undefined;
      if (row) {
        rowids.push(row.rowid);
        deleted.push(id);
      }
    }
    if (rowids.length === 0) return { rowids, deleted, changes: [] };
    bump.run(collectionId);
    return { rowids, deleted, changes: [{ type: 'deleted', collectionId, rowids }] };
  });

  return {
    digests(collectionId, docIds) {
      const rows = s.digests.all(collectionId, JSON.stringify(docIds)) as { doc_id: string; text_sha256: string; metadata: string }[];
      return new Map(rows.map((r) => [r.doc_id, { textSha256: r.text_sha256, metadata: r.metadata }]));
    },
    writeBatch(collectionId, documents, metadataOnly, basis) {
      try {
        return storage.write(() => writeBatch(collectionId, documents, metadataOnly, basis));
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
    filterRowids: filters.rowids,
    listDocuments,
    int8Codes(rowids) {
      const rows = s.int8.all(JSON.stringify(rowids)) as [number, Buffer][];
      return inRowidOrder(rowids, rows, (r) => r[0]).map((r) => r?.[1]);
    },
    int8CodePage(collectionId, afterRowid, limit) {
      const rows = s.int8Page.all(afterRowid, collectionId, limit) as [number, Buffer][];
      return { rowids: rows.map((r) => r[0]), codes: rows.map((r) => r[1]) };
    },
    documentsByRowid: byRowid,
    countVectorDocuments: (collectionId) => s.vectorDocuments.get(collectionId) as number,
    iterateBinaryCodes: (collectionId) => s.binaryCodes.iterate(collectionId) as IterableIterator<[number, Buffer]>,
    *iterateDocuments(collectionId) {
      for (const r of s.all.iterate(collectionId) as IterableIterator<DocRow & { binary_code: Buffer; int8_code: Buffer; first_code: Buffer | null }>) {
        yield { ...toDocument(r), binaryCode: r.binary_code, int8Code: r.int8_code, firstCode: r.first_code };
      }
    },
  };
}
