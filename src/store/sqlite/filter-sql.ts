/**
 * Metadata filters as SQL: equality on top-level keys of the JSON metadata, with the JSON type
 * respected (true is not 1, "1" is not 1). Statements are cached by their SQL, which depends
 * only on the keys and their values' types, so the cache stays small.
 */
import type Database from 'better-sqlite3';
import type { Db } from '../database.js';
import type { MetadataFilter } from '../store.js';

/** A JSON path for one top-level key: `$."key"`. Keys holding `"` or `\` are refused upstream. */
export function metadataPath(key: string): string {
  return `$."${key}"`;
}

/** SQL and parameters of one filter key. */
function condition(key: string, value: string | number | boolean | null): [string, unknown[]] {
  const p = metadataPath(key);
  if (value === null) return ["json_type(metadata, ?) = 'null'", [p]];
  if (typeof value === 'boolean') return [`json_type(metadata, ?) = '${value ? 'true' : 'false'}'`, [p]];
  if (typeof value === 'number') return ["json_type(metadata, ?) IN ('integer', 'real') AND json_extract(metadata, ?) = ?", [p, p, value]];
  return ["json_type(metadata, ?) = 'text' AND json_extract(metadata, ?) = ?", [p, p, value]];
}

/** Rowids of a collection's documents whose metadata matches `filter`, ascending. */
export function createFilterQuery(db: Db): (collectionId: number, filter: MetadataFilter) => number[] {
  const statements = new Map<string, Database.Statement<unknown[]>>();
  return (collectionId, filter) => {
    const parts = Object.keys(filter)
      .sort()
      .map((k) => condition(k, filter[k]!));
    const sql = `SELECT rowid FROM documents WHERE collection_id = ?${parts.map(([c]) => ` AND ${c}`).join('')} ORDER BY rowid`;
    let stmt = statements.get(sql);
    if (!stmt) {
      stmt = db.prepare<unknown[]>(sql).pluck(true);
      if (statements.size > 256) statements.clear();
      statements.set(sql, stmt);
    }
    return stmt.all(collectionId, ...parts.flatMap(([, params]) => params)) as number[];
  };
}
