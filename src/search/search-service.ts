/**
 * The search service: collections, documents, asymmetric search, re-encoding and the
 * consistency check, over a Store, its first stage (src/first-stage/) and the loaded encoders.
 * Knows nothing of HTTP. Each job lives in its own module; this one composes them behind the
 * SearchService interface, and keeps the first stage in step with the store's writes.
 *
 *   collections.ts  rows, re-encodings under way, which encoder holds a collection's codes
 *   documents.ts    upsert planning and writes, reads and deletes by id
 *   query.ts        the query pipeline (first stage, int8 rescoring, hits)
 *   reencode.ts     re-encoding for another model in the background
 *   check.ts        the consistency check
 */
import { supportedCodeBits } from '../encoder/bundle.js';
import { errors } from '../errors.js';
import { keepInStep } from '../first-stage/in-step.js';
import { check } from './check.js';
import { createCollections } from './collections.js';
import { deleteDocument, deleteDocuments, getDocument, upsertDocuments } from './documents.js';
import { search } from './query.js';
import { reencode, reencodeProblem, stopReencodes } from './reencode.js';
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
      return collections.info(store.createCollection(name, encoder.fingerprint, encoder.dimension, codeBits).collection);
    },
    listCollections: () => store.listCollections().map(collections.info),
    getCollection: (name) => collections.info(collections.require(name)),
    hasCollection: (name) => store.getCollection(name) !== undefined,
    reencodeTarget: (name) => collections.require(name).reencode_target,
    reencodeProblem: (name, target) => reencodeProblem(store, collections.require(name), target),
    deleteCollection(name) {
      const c = collections.require(name);
      store.deleteCollection(c.id);
      return { name, documents: c.document_count };
    },
    upsertDocuments: (name, documents, options = {}) => upsertDocuments(collections, name, documents, options),
    getDocument: (name, id) => getDocument(collections, name, id),
    deleteDocuments: (name, ids) => deleteDocuments(collections, name, ids),
    deleteDocument: (name, id) => deleteDocument(collections, name, id),
    search: (request) => search(collections, request),
    loadIndexes: () => deps.firstStage.loadIndexes(),
    reencode: (name, target) => reencode(collections, name, target),
    stopBackground: () => stopReencodes(collections),
    check: (name, options) => check(collections, name, options),
  };
}
