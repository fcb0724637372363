/** Collections over SQLite: rows of the `collections` table and the counters kept by triggers. */
import { errors } from '../../errors.js';
import type { Db } from '../database.js';
import type { StorageGuard } from '../storage.js';
import type { CollectionRepository, CollectionRow } from '../store.js';

const isUniqueViolation = (e: unknown) => (e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE';

export function createCollectionRepository(db: Db, storage: StorageGuard): CollectionRepository {
  const s = {
    insert: db.prepare<[string, string, number, number | null, number | null, string]>(
      'INSERT INTO collections (name, fingerprint, dimension, code_bits, target_recall, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING *',
    ),
    targetRecall: db.prepare<[number | null, number]>('UPDATE collections SET target_recall = ? WHERE id = ? RETURNING *'),
    byName: db.prepare<[string]>('SELECT * FROM collections WHERE name = ?'),
    byId: db.prepare<[number]>('SELECT * FROM collections WHERE id = ?'),
    all: db.prepare('SELECT * FROM collections ORDER BY name'),
    delete: db.prepare<[number]>('DELETE FROM collections WHERE id = ?'),
    recount: db.prepare<[number]>('SELECT count(*) AS documents, coalesce(sum(bytes), 0) AS payloadBytes FROM document_payload WHERE collection_id = ?'),
  };
  return {
    createCollection(name, fingerprint, dimension, { codeBits, targetRecall } = {}) {
      const bits = codeBits === undefined || codeBits === dimension ? null : codeBits;
      try {
        const collection = storage.write(() => s.insert.get(name, fingerprint, dimension, bits, targetRecall ?? null, new Date().toISOString()) as CollectionRow);
        return { collection, changes: [{ type: 'created', collection }] };
      } catch (e) {
        if (isUniqueViolation(e)) throw errors.collectionExists(`collection "${name}" already exists`);
        throw e;
      }
    },
    setTargetRecall: (id, targetRecall) => storage.write(() => s.targetRecall.get(targetRecall, id) as CollectionRow | undefined),
    getCollection: (name) => s.byName.get(name) as CollectionRow | undefined,
    getCollectionById: (id) => s.byId.get(id) as CollectionRow | undefined,
    listCollections: () => s.all.all() as CollectionRow[],
    deleteCollection: (id) => ({ existed: storage.write(() => s.delete.run(id).changes === 1), changes: [{ type: 'dropped', collectionId: id }] }),
    recount: (collectionId) => s.recount.get(collectionId) as { documents: number; payloadBytes: number },
  };
}
