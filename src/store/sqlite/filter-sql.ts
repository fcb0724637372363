/**
 * Metadata filters as SQL: equality on top-level keys of the JSON metadata, with the JSON type
 * respected (true is not 1, "1" is not 1), answered from the metadata_values index. Statements
 * are cached by their number of keys.
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

const MATCHES = 'SELECT doc FROM metadata_values WHERE collection_id = ? AND key = ? AND kind = ? AND value = ?';

/**
 * Rowids of a collection's documents whose metadata matches `filter`, ascending: each key's
 * matches are a range of the metadata_values index, already in rowid order, and several keys
 * intersect by merging those ranges; no document's JSON is read.
 */
export function createFilterQuery(db: Db): (collectionId: number, filter: MetadataFilter) => number[] {
  const statements = new Map<number, Database.Statement<unknown[]>>();
  const all = db.prepare<[number]>('SELECT rowid FROM documents WHERE collection_id = ? ORDER BY rowid').pluck(true);
  return (collectionId, filter) => {
    const keys = Object.keys(filter).sort();
    if (keys.length === 0) return all.all(collectionId) as number[];
    let stmt = statements.get(keys.length);
    if (!stmt) {
      stmt = db.prepare<unknown[]>(`${Array.from({ length: keys.length }, () => MATCHES).join(' INTERSECT ')} ORDER BY 1`).pluck(true);
      statements.set(keys.length, stmt);
    }
    return stmt.all(...keys.flatMap((k) => [collectionId, k, ...indexed(filter[k]!)])) as number[];
  };
}
