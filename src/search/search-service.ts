/**
 * The search service: collections, documents, asymmetric search, re-encoding and the
 * consistency check, over a Store, its first stage (src/first-stage/) and the loaded encoders.
 * Knows nothing of HTTP. Each job lives in its own module; this one composes them behind the
 * SearchService interface, and keeps the first stage in step with the store's writes.
 *
 *   collections.ts  rows, re-encodings under way, which encoder holds a collection's codes
 *   documents.ts    upsert planning and writes, reads and deletes by id, paged listings (cursor.ts)
 *   query.ts        the query pipeline (first stage, int8 rescoring, hits)
 *   reencode.ts     re-encoding for another model in the background
 *   transforms.ts   first-stage transforms: stored with a collection, switched in the background
 *   check.ts        the consistency check
 *
 * and the recall measured on each collection (src/quality/, held by collections.ts).
 */
import { supportedCodeBits } from '../encoder/bundle.js';
import { errors } from '../errors.js';
import { keepInStep } from '../first-stage/in-step.js';
import { check } from './check.js';
import { createCollections } from './collections.js';
import { deleteDocument, deleteDocuments, getDocument, listDocuments, upsertDocuments } from './documents.js';
import { search } from './query.js';
import { reencode, reencodeProblem, stopReencodes } from './reencode.js';
import { abandonSwitch, addArtifact, addRotation, codeSample, resumeSwitches, stopSwitches, switchTransform } from './transforms.js';
import type { SearchService, SearchServiceDeps } from './types.js';

// The one public module of search: its types and limits come with it.
export * from './types.js';

export function createSearchService(deps: SearchServiceDeps): SearchService {
  // Every write below goes through this view: the first stage sees it in the same tick.
  const store = keepInStep(deps.store, deps.firstStage);
  const collections = createCollections({ ...deps, store });
  return {
    createCollection(name, options = {}) {
      const encoder = deps.encoder();
      const codeBits = options.codeBits ?? encoder.dimension;
      const supported = supportedCodeBits(encoder.bundle.manifest);
      if (!supported.includes(codeBits)) {
        throw errors.unsupportedCodeBits(
          `code_bits ${codeBits}: model ${encoder.fingerprint} (${encoder.bundle.manifest.name}) supports binary codes of ${supported.join(', ')} bits ` +
            '(a bundle lists the lengths its model was trained for in binary_code_bits)',
        );
      }
      if (options.targetRecall !== undefined) checkTargetRecall(options.targetRecall);
      return collections.info(store.createCollection(name, encoder.fingerprint, encoder.dimension, { codeBits, targetRecall: options.targetRecall }).collection);
    },
    listCollections: () => store.listCollections().map(collections.info),
    getCollection: (name) => collections.info(collections.require(name)),
    hasCollection: (name) => store.getCollection(name) !== undefined,
    reencodeTarget: (name) => collections.require(name).reencode_target,
    reencodeProblem: (name, target) => reencodeProblem(store, collections.require(name), target),
    deleteCollection(name) {
      const c = collections.require(name);
      store.deleteCollection(c.id);
      collections.quality.forget(c.id);
      return { name, documents: c.document_count };
    },
    setTargetRecall(name, targetRecall) {
      if (targetRecall !== null) checkTargetRecall(targetRecall);
      const c = store.setTargetRecall(collections.require(name).id, targetRecall);
      if (!c) throw errors.collectionNotFound(`collection "${name}" does not exist`);
      return collections.info(c);
    },
    async measureQuality(name) {
      await collections.quality.measureNow(collections.require(name));
      collections.quality.persist();
      return collections.info(collections.require(name));
    },
    upsertDocuments: (name, documents, options = {}) => upsertDocuments(collections, name, documents, options),
    getDocument: (name, id) => getDocument(collections, name, id),
    listDocuments: (name, options) => listDocuments(collections, name, options),
    deleteDocuments: (name, ids) => deleteDocuments(collections, name, ids),
    deleteDocument: (name, id) => deleteDocument(collections, name, id),
    search: (request) => search(collections, request),
    loadIndexes: () => deps.firstStage.loadIndexes(),
    reencode(name, target) {
      // The new model's codes are first dims: a transform switch under way is dropped.
      const c = collections.require(name);
      if (c.fingerprint !== target.fingerprint) abandonSwitch(collections, c);
      return reencode(collections, name, target);
    },
    addRotation: (name, seed) => addRotation(collections, name, seed),
    addTransformArtifact: (name, dir, summary) => addArtifact(collections, name, dir, summary),
    switchTransform: (name, target, policy) => switchTransform(collections, name, target, policy),
    resumeSwitches: (onEnd) => resumeSwitches(collections, onEnd),
    codeSample: (name, limit) => codeSample(collections, name, limit),
    startBackground: () => collections.quality.start(),
    stopBackground: async () => {
      await Promise.all([stopReencodes(collections), stopSwitches(collections), collections.quality.stop()]);
    },
    check: (name, options) => check(collections, name, options),
  };
}

/** A recall target is a share of the exact top 10: above 0, at most 1. */
function checkTargetRecall(target: number): void {
  if (!(Number.isFinite(target) && target > 0 && target <= 1)) {
    throw errors.invalidTargetRecall(`target_recall ${target}: must be a number above 0 and at most 1 (the share of the exact top 10 to keep, e.g. 0.99)`);
  }
}
