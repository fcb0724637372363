/**
 * The query pipeline: encode the query (or take the caller's vector), the first stage over the
 * collection's codes (src/first-stage/: Hamming, or asymmetric 4-bit), then rescoring of the
 * candidates with the float32 query against their int8 codes, then the hits' texts and metadata.
 *
 * From the end of the encoding to the answer everything is synchronous: one consistent view of
 * the first stage and the rows (a write reaches both in one tick: first-stage/in-step.ts).
 */
import { namesBundle } from '../encoder/bundle.js';
import { errors } from '../errors.js';
import { encodeQuery, similarity } from '../first-stage/query.js';
import { foldQuery, scoreInt8 } from '../quantization/dequantize.js';
import type { Quantizer } from '../quantization/quantize.js';
import { codeBitsOf, type Store } from '../store/store.js';
import type { Collections } from './collections.js';
import { parseMetadata, storedText, vectorProblem } from './documents.js';
import type { SearchRequest, SearchResponse } from './types.js';

/**
 * A candidate's row is gone: deleted by another API process on a shared database between the
 * first stage and the reads (one process alone can never see this). The search runs again.
 */
class RowsChanged extends Error {}

const elapsed = (t0: number) => Math.round((performance.now() - t0) * 1000) / 1000;

/** Candidates ordered by int8 score, ties by Hamming distance then rowid (a stable order). */
function rescore(store: Store, quantizer: Quantizer, query: Float32Array, rowids: number[], distances: number[]) {
  const folded = foldQuery(query, quantizer);
  const codes = store.int8Codes(rowids);
  const scored = rowids.map((rowid, i) => {
    const code = codes[i];
    if (!code) throw new RowsChanged(`document rowid ${rowid} is in the index but not in the database`);
    return { rowid, distance: distances[i]!, score: scoreInt8(folded, new Int8Array(code.buffer, code.byteOffset, code.length)) };
  });
  return scored.sort((a, b) => b.score - a.score || a.distance - b.distance || a.rowid - b.rowid);
}

export async function search(collections: Collections, request: SearchRequest, attempt = 1): Promise<SearchResponse> {
  try {
    return await searchOnce(collections, request, attempt);
  } catch (e) {
    if (!(e instanceof RowsChanged)) throw e;
    if (attempt < 3) return search(collections, request, attempt + 1);
    throw errors.internal(e.message);
  }
}

async function searchOnce(collections: Collections, request: SearchRequest, attempt: number): Promise<SearchResponse> {
  const { store, firstStage } = collections.deps;
  const topK = request.topK ?? 10;
  const multiplier = request.rescoreMultiplier ?? 4;
  const doRescore = request.rescore ?? true;
  if ((request.query === undefined) === (request.vector === undefined)) {
    throw errors.invalidRequest('send exactly one of "query" (a text) or "vector" (a float32 query embedding)');
  }
  const filter = request.filter && Object.keys(request.filter).length > 0 ? request.filter : undefined;
  const c = collections.require(request.collection);
  const encoder = collections.encoderOf(c);
  // A vector is only comparable with codes of the model that computed it. Without `model` it
  // is taken to be the served model's (what /encode returns): during a re-encoding, or for a
  // collection of another model, that is not the model of the codes searched.
  const expected = request.model ?? (request.vector !== undefined ? collections.deps.encoder().fingerprint : undefined);
  if (expected !== undefined && !namesBundle(encoder.bundle, expected)) {
    throw errors.modelMismatch(
      `collection "${c.name}" holds codes of model ${c.fingerprint} (${encoder.bundle.manifest.name}), ` +
        (request.model !== undefined
          ? `not of the model "${request.model}" this request names`
          : `but the vector is taken to be the served model's (${expected}); send a vector of model ${c.fingerprint} with "model": "${c.fingerprint}", or a query text`),
    );
  }

  const t0 = performance.now();
  let query: Float32Array;
  if (request.vector !== undefined) {
    const problem = vectorProblem(request.vector, c.dimension);
    if (problem) throw errors.invalidVector(problem);
    query = Float32Array.from(request.vector);
  } else {
    query = (await encoder.embed([request.query!], { inputType: 'query', truncate: true })).vectors[0]!;
  }
  const encodeMs = request.vector !== undefined ? 0 : elapsed(t0);

  // Synchronous from here: one consistent view of the index and the rows.
  const now = store.getCollectionById(c.id);
  if (!now) throw errors.collectionNotFound(`collection "${request.collection}" was deleted during the search`);
  // A re-encoding finished while the query was encoded: encode it again with the new model.
  if (now.fingerprint !== c.fingerprint) {
    if (attempt > 1) throw errors.conflict(`collection "${request.collection}" switched models during the search; retry`);
    return search(collections, request, attempt + 1);
  }
  const t1 = performance.now();
  const restrict = filter ? store.filterRowids(c.id, filter) : undefined;
  const filterMs = filter ? elapsed(t1) : 0;
  const t2 = performance.now();
  const k = doRescore ? topK * multiplier : topK;
  // A compact first stage scans the first codeBitsOf dimensions; rescoring uses them all.
  const firstQuery = encodeQuery(request.firstStage ?? 'hamming', query, codeBitsOf(now), encoder.quantizer);
  const first = firstStage.nearest(c.id, firstQuery, k, restrict);
  const firstStageMs = elapsed(t2);

  const t3 = performance.now();
  let ranked: { rowid: number; score: number }[];
  if (doRescore) {
    ranked = rescore(store, encoder.quantizer, query, first.rowids, first.distances).slice(0, topK);
  } else {
    const score = similarity(firstQuery);
    ranked = first.rowids.map((rowid, i) => ({ rowid, score: score(first.distances[i]!) }));
  }
  const rescoreMs = doRescore ? elapsed(t3) : 0;
  const docs = store.documentsByRowid(ranked.map((r) => r.rowid));
  const hits = ranked.map((r, i) => {
    const d = docs[i];
    if (!d) throw new RowsChanged(`document rowid ${r.rowid} is in the index but not in the database`);
    return { id: d.docId, score: r.score, text: storedText(d.text, d.textSha256), metadata: parseMetadata(d.metadata) };
  });
  return {
    hits,
    stats: {
      documentsScanned: first.scanned,
      candidates: first.rowids.length,
      candidatesRescored: doRescore ? first.rowids.length : 0,
      encodeMs,
      filterMs,
      firstStageMs,
      rescoreMs,
    },
  };
}
