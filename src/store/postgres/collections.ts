/** Collections over PostgreSQL: rows of the `collections` table and the counters kept by triggers. */
import { errors } from '../../errors.js';
import type { CollectionRepository, CollectionRow } from '../store.js';
import { isUniqueViolation, type PgBridge } from './bridge.js';

export function createCollectionRepository(pg: PgBridge): CollectionRepository {
  return {
    createCollection(name, fingerprint, dimension, { codeBits, targetRecall } = {}) {
      const bits = codeBits === undefined || codeBits === dimension ? null : codeBits;
      try {
        const collection = pg.query<CollectionRow>(
          'INSERT INTO collections (name, fingerprint, dimension, code_bits, target_recall, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *',
          [name, fingerprint, dimension, bits, targetRecall ?? null, new Date().toISOString()],
        )[0]!;
        return { collection, changes: [{ type: 'created', collection }] };
      } catch (e) {
        if (isUniqueViolation(e)) throw errors.collectionExists(`collection "${name}" already exists`);
        throw e;
      }
    },
    setTargetRecall: (id, targetRecall) => pg.query<CollectionRow>('UPDATE collections SET target_recall = $1 WHERE id = $2 RETURNING *', [targetRecall, id])[0],
    getCollection: (name) => pg.query<CollectionRow>('SELECT * FROM collections WHERE name = $1', [name])[0],
    getCollectionById: (id) => pg.query<CollectionRow>('SELECT * FROM collections WHERE id = $1', [id])[0],
    // COLLATE "C": the byte order SQLite's ORDER BY name gives, whatever the database's locale.
    listCollections: () => pg.query<CollectionRow>('SELECT * FROM collections ORDER BY name COLLATE "C"'),
    deleteCollection: (id) => ({
      existed: pg.query('DELETE FROM collections WHERE id = $1 RETURNING id', [id]).length === 1,
      changes: [{ type: 'dropped', collectionId: id }],
    }),
    recount: (collectionId) =>
      pg.query<{ documents: number; payloadBytes: number }>(
        'SELECT count(*) AS documents, coalesce(sum(document_bytes(d)), 0)::bigint AS "payloadBytes" FROM documents d WHERE collection_id = $1',
        [collectionId],
      )[0]!,
  };
}
