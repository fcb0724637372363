/**
 * Where writes meet the first stage, once for every backend: a view of a store whose writes
 * keep the first stage in step. A write that adds codes makes room in the index before its
 * commit (so that applying it cannot fail once committed), and every write's changes are applied
 * right after it returns, in the same tick: a search sees a batch entirely or not at all.
 * Search works through this view (search-service.ts); a backend only returns what it changed.
 */
import type { Store } from '../store/store.js';
import type { FirstStageIndex } from './first-stage.js';

export function keepInStep(store: Store, firstStage: FirstStageIndex): Store {
  return {
    ...store,
    createCollection: (name, fingerprint, dimension, settings) => firstStage.apply(store.createCollection(name, fingerprint, dimension, settings)),
    deleteCollection: (id) => firstStage.apply(store.deleteCollection(id)),
    writeBatch(collectionId, documents, metadataOnly, basis) {
      firstStage.reserve(collectionId, documents.length);
      return firstStage.apply(store.writeBatch(collectionId, documents, metadataOnly, basis));
    },
    deleteDocuments: (collectionId, docIds) => firstStage.apply(store.deleteDocuments(collectionId, docIds)),
    beginStaging: (collectionId, fingerprint, dimension) => firstStage.apply(store.beginStaging(collectionId, fingerprint, dimension)),
    stageCodes(collectionId, fingerprint, rows) {
      firstStage.reserve(collectionId, rows.length, 'staging');
      return firstStage.apply(store.stageCodes(collectionId, fingerprint, rows));
    },
    finishReencode: (collectionId, fingerprint, dimension) => firstStage.apply(store.finishReencode(collectionId, fingerprint, dimension)),
    beginTransformStaging: (collectionId, fingerprint) => firstStage.apply(store.beginTransformStaging(collectionId, fingerprint)),
    stageTransformCodes(collectionId, fingerprint, rows) {
      firstStage.reserve(collectionId, rows.length, 'staging');
      return firstStage.apply(store.stageTransformCodes(collectionId, fingerprint, rows));
    },
    finishTransform: (collectionId, fingerprint) => firstStage.apply(store.finishTransform(collectionId, fingerprint)),
    abandonTransform: (collectionId) => firstStage.apply(store.abandonTransform(collectionId)),
  };
}
