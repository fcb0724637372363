/**
 * The query pipeline: encode the query (or take the caller's vector), the first stage over the
 * collection's codes (src/first-stage/: Hamming, or asymmetric 4-bit), then rescoring of the
 * candidates with the float32 query against their int8 codes, then the hits' texts and metadata.
 * The multiplier is the request's, or with `auto` the smallest whose recall measured on the
 * collection meets its target (src/quality/); `rescore: "exact"` ranks every document by its
 * int8 code instead. Every answer says the multiplier used and the recall estimated for it, and
 * the query's vector is offered to the collection's sample (never its text).
 *
 * From the end of the encoding to the answer everything is synchronous: one consistent view of
 * the first stage and the rows (a write reaches both in one tick: first-stage/in-step.ts).
 */
import { namesBundle } from '../encoder/bundle.js';
import { errors } from '../errors.js';
import { encodeQuery, similarity } from '../first-stage/query.js';
import { UNMEASURED_MULTIPLIER } from '../quality/estimate.js';
import { exactTopK } from '../quality/exact.js';
import type { RecallChoice } from '../quality/monitor.js';
import { foldQuery, scoreInt8 } from '../quantization/dequantize.js';
import type { Quantizer } from '../quantization/quantize.js';
import { codeBitsOf, type Store } from '../store/store.js';
import type { Collections } from './collections.js';
import { parseMetadata, storedText, vectorProblem } from './documents.js';
import { CANDIDATES_MAX, EXACT_MAX_DOCUMENTS_DEFAULT, RESCORE_MULTIPLIER_MAX, type SearchRecall, type SearchRequest, type SearchResponse } from './types.js';

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
  const requested = request.rescoreMultiplier ?? UNMEASURED_MULTIPLIER;
  const rescoreMode = request.rescore ?? true;
  if ((request.query === undefined) === (request.vector === undefined)) {
    throw errors.invalidRequest('send exactly one of "query" (a text) or "vector" (a float32 query embedding)');
  }
  if (request.maxRescoreMultiplier !== undefined && requested !== 'auto') {
    throw errors.invalidRescoreMultiplier('max_rescore_multiplier bounds the multiplier "auto" chooses: send it with "rescore_multiplier": "auto" only');
  }
  const maxMultiplier = request.maxRescoreMultiplier ?? RESCORE_MULTIPLIER_MAX;
  if (!Number.isInteger(maxMultiplier) || maxMultiplier < 1 || maxMultiplier > RESCORE_MULTIPLIER_MAX) {
    throw errors.invalidRescoreMultiplier(`max_rescore_multiplier ${maxMultiplier}: must be an integer from 1 to ${RESCORE_MULTIPLIER_MAX}`);
  }
  if (rescoreMode === true && requested !== 'auto' && topK * requested > CANDIDATES_MAX) {
    throw errors.invalidRescoreMultiplier(`top_k ${topK} × rescore_multiplier ${requested} is ${topK * requested} candidates; a search rescores at most ${CANDIDATES_MAX}`);
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
  const stage = request.firstStage ?? 'hamming';
  const { quality } = collections;
  let ranked: { rowid: number; score: number }[];
  let firstStageMs = 0;
  let rescoreMs = 0;
  let scanned: number;
  let candidates: number;
  let recall: SearchRecall;
  if (rescoreMode === 'exact') {
    const documents = restrict?.length ?? now.document_count;
    const limit = collections.deps.exactMaxDocuments ?? EXACT_MAX_DOCUMENTS_DEFAULT;
    if (documents > limit) {
      throw errors.exactSearchTooLarge(
        `rescore "exact" ranks every document by its int8 code, and ${filter ? 'the filter matches' : `collection "${c.name}" holds`} ${documents} documents, ` +
          `more than this service scans in one search (QEMBED_EXACT_MAX_DOCUMENTS=${limit}); use "rescore_multiplier": "auto" for a measured recall, or a filter`,
      );
    }
    const t3 = performance.now();
    const top = exactTopK(store, c.id, foldQuery(query, encoder.quantizer), topK, restrict);
    ranked = top.rowids.map((rowid, i) => ({ rowid, score: top.scores[i]! }));
    rescoreMs = elapsed(t3);
    scanned = candidates = documents;
    recall = { multiplier: null, chosenBy: 'exact', estimate: 1, low: 1, high: 1, measured: 0, basis: null, target: null, targetMet: null };
  } else {
    // Without rescoring the first stage's own top k is the answer: its recall is the multiplier 1's.
    // Auto stays within CANDIDATES_MAX too: at most its share for this top_k.
    const choice = quality.choose(now, stage, rescoreMode ? requested : 1, Math.max(1, Math.min(maxMultiplier, Math.floor(CANDIDATES_MAX / topK))));
    const multiplier = choice.multiplier;
    const t2 = performance.now();
    const k = rescoreMode ? topK * multiplier : topK;
    // A compact first stage scans the first codeBitsOf dimensions; rescoring uses them all.
    // Under a transform (transforms.ts) the query is coded with the collection's served one, read in this tick.
    const firstQuery = encodeQuery(stage, query, codeBitsOf(now), encoder.quantizer, collections.transformOf(now));
    const first = firstStage.nearest(c.id, firstQuery, k, restrict);
    firstStageMs = elapsed(t2);
    const t3 = performance.now();
    if (rescoreMode) {
      ranked = rescore(store, encoder.quantizer, query, first.rowids, first.distances).slice(0, topK);
      rescoreMs = elapsed(t3);
    } else {
      const score = similarity(firstQuery);
      ranked = first.rowids.map((rowid, i) => ({ rowid, score: score(first.distances[i]!) }));
    }
    scanned = first.scanned;
    candidates = first.rowids.length;
    recall = recallOf(choice, rescoreMode && requested === 'auto');
  }
  const docs = store.documentsByRowid(ranked.map((r) => r.rowid));
  const hits = ranked.map((r, i) => {
    const d = docs[i];
    if (!d) throw new RowsChanged(`document rowid ${r.rowid} is in the index but not in the database`);
    return { id: d.docId, score: r.score, text: storedText(d.text, d.textSha256), metadata: parseMetadata(d.metadata) };
  });
  if (request.sampled !== false) quality.record(now, query);
  return {
    hits,
    stats: {
      documentsScanned: scanned,
      candidates,
      candidatesRescored: rescoreMode === false ? 0 : candidates,
      encodeMs,
      filterMs,
      firstStageMs,
      rescoreMs,
    },
    recall,
  };
}

function recallOf(choice: RecallChoice, auto: boolean): SearchRecall {
  const e = choice.estimate;
  return {
    multiplier: choice.multiplier,
    chosenBy: auto ? 'auto' : 'request',
    estimate: e?.recall ?? null,
    low: e?.low ?? null,
    high: e?.high ?? null,
    measured: choice.measured,
    basis: choice.basis,
    target: auto ? choice.target : null,
    targetMet: auto ? choice.targetMet : null,
  };
}
