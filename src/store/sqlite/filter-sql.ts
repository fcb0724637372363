/**
 * Metadata filters as SQL: equality on top-level keys of the JSON metadata, with the JSON type
 * respected (true is not 1, "1" is not 1), answered from the metadata_values index. Statements
 * are cached by their shape and number of keys.
 */
import type Database from 'better-sqlite3';
import type { Db } from '../database.js';
import type { MetadataFilter } from '../store.js';

/** The (kind, value) a scalar is indexed as in metadata_values (migrations/006-metadata-values.sql). */
function indexed(value: string | number | boolean | null): [string, string | number] {
  if (value === null) return ['null', 0];
  if (typeof value === 'boolean') return ['boolean', value ? 1 : 0];
  if (typeof value === 'number') return ['number', value];
  return ['text', value];
}

/** One key's matches after a rowid: a range of the metadata_values primary key, in rowid order. */
const MATCHES = 'SELECT doc FROM metadata_values WHERE collection_id = ? AND key = ? AND kind = ? AND value = ? AND doc > ?';

type Shape = 'all' | 'page' | 'count';

export interface FilterQueries {
  /** Rowids of the collection's documents whose metadata matches, ascending. */
  rowids(collectionId: number, filter: MetadataFilter): number[];
  /** The first `limit` of those rowids above `afterRowid` (a page of a listing). */
  page(collectionId: number, filter: MetadataFilter, afterRowid: number, limit: number): number[];
  /** How many documents match (an empty filter: the collection's counter). */
  count(collectionId: number, filter: MetadataFilter): number;
}

/**
 * Each key's matches are a range of the metadata_values index, already in rowid order, and
 * several keys intersect by merging those ranges; no document's JSON is read. An empty filter
 * matches every document of the collection.
 */
export function createFilterQueries(db: Db): FilterQueries {
  const statements = new Map<string, Database.Statement<unknown[]>>();
  const matching = (shape: Shape, keys: number) => {
    const name = `${shape}:${keys}`;
    let stmt = statements.get(name);
    if (!stmt) {
      const rows = Array.from({ length: keys }, () => MATCHES).join(' INTERSECT ');
      stmt = db.prepare<unknown[]>(shape === 'count' ? `SELECT count(*) FROM (${rows})` : `${rows} ORDER BY 1${shape === 'page' ? ' LIMIT ?' : ''}`).pluck(true);
      statements.set(name, stmt);
    }
    return stmt;
  };
  const params = (collectionId: number, filter: MetadataFilter, keys: string[], afterRowid: number) =>
    keys.flatMap((k) => [collectionId, k, ...indexed(filter[k]!), afterRowid]);

  const all = db.prepare<[number]>('SELECT rowid FROM documents WHERE collection_id = ? ORDER BY rowid').pluck(true);
  // `+collection_id`: walk the rowid key from the cursor instead of the (collection_id, doc_id) index and a sort per page.
  const allPage = db.prepare<[number, number, number]>('SELECT rowid FROM documents WHERE rowid > ? AND +collection_id = ? ORDER BY rowid LIMIT ?').pluck(true);
  const counter = db.prepare<[number]>('SELECT document_count FROM collections WHERE id = ?').pluck(true);
  return {
    rowids(collectionId, filter) {
      const keys = Object.keys(filter).sort();
      if (keys.length === 0) return all.all(collectionId) as number[];
      return matching('all', keys.length).all(...params(collectionId, filter, keys, 0)) as number[];
    },
    page(collectionId, filter, afterRowid, limit) {
      const keys = Object.keys(filter).sort();
      if (keys.length === 0) return allPage.all(afterRowid, collectionId, limit) as number[];
      return matching('page', keys.length).all(...params(collectionId, filter, keys, afterRowid), limit) as number[];
    },
    count(collectionId, filter) {
      const keys = Object.keys(filter).sort();
      if (keys.length === 0) return (counter.get(collectionId) as number | undefined) ?? 0;
      return matching('count', keys.length).get(...params(collectionId, filter, keys, 0)) as number;
    },
  };
}
