/**
 * End-to-end retrieval evaluation of a model bundle on a BEIR collection, through the same
 * store and search code the service uses: the corpus is ingested into a collection (SQLite in
 * memory) by SearchService.upsertDocuments, and the quantized modes are POST /search's code
 * path (`search.search` with the query's float32 vector). Only the float32 reference keeps
 * full-precision document vectors, in memory, for the evaluation alone.
 *
 * Modes: float32 (exact dot products), int8 (float32 query against every int8 document, the
 * service's rescoring arithmetic), binary (Hamming first stage only), binary+int8 (first stage
 * then int8 rescoring) at each rescore multiplier. NDCG@10, Recall@10 and MRR@10 come from a
 * top-10 search, as the service is used; Recall@100 from a top-100 search with the same
 * settings. Fidelity@10 compares each mode's top-10 with the float32 top-10 over all queries.
 */
import { openDatabase } from '../store/database.js';
import { createSqliteStore } from '../store/sqlite/sqlite-store.js';
import { type BeirDataset, documentText } from '../datasets/beir.js';
import type { Encoder } from '../encoder/encoder.js';
import { createFirstStageIndex } from '../first-stage/first-stage.js';
import { foldQuery, scoreInt8 } from '../quantization/dequantize.js';
import { bytesPerVector } from '../quantization/quantize.js';
import { createSearchService, type SearchService } from '../search/search-service.js';
import { evaluateRankings, fidelityAt, type Ranking } from './metrics.js';
import type { EvalReport, FirstStageResult, ModeResult } from './report.js';

export interface EvalOptions {
  dataset: BeirDataset;
  encoder: Encoder;
  multipliers?: number[];
  /** First-stage code length in bits (a collection's code_bits; default: the dimension). */
  codeBits?: number;
  /** Documents per upsert batch. */
  batchSize?: number;
  onProgress?: (stage: string, done: number, total: number) => void;
}

const COLLECTION = 'eval';

/** Wraps an encoder so every vector it returns for a text is remembered (the float32 reference). */
function recording(encoder: Encoder, seen: Map<string, Float32Array>): Encoder {
  return {
    ...encoder,
    async embed(texts, options) {
      const out = await encoder.embed(texts, options);
      texts.forEach((t, i) => seen.set(t, out.vectors[i]!));
      return out;
    },
  };
}

/** Indices of the k largest scores, ties broken by index (corpus order). */
function topIndices(scores: Float32Array | Float64Array, k: number): number[] {
  const idx = Array.from({ length: scores.length }, (_, i) => i);
  idx.sort((a, b) => scores[b]! - scores[a]! || a - b);
  return idx.slice(0, k);
}

export async function runEvaluation(options: EvalOptions): Promise<EvalReport> {
  const { dataset, encoder } = options;
  const multipliers = options.multipliers ?? [1, 2, 4, 8, 16];
  const batchSize = options.batchSize ?? 64;
  const progress = options.onProgress ?? (() => {});
  const dim = encoder.dimension;
  const codeBits = options.codeBits ?? dim;
  const binaryBytes = codeBits / 8;

  const db = openDatabase({ file: ':memory:' });
  try {
    const vectors = new Map<string, Float32Array>();
    const store = createSqliteStore(db);
    const search: SearchService = createSearchService({ store, firstStage: createFirstStageIndex(store), encoder: () => recording(encoder, vectors) });
    search.createCollection(COLLECTION, { codeBits });

    // Ingest through the service's own write path.
    const t0 = performance.now();
    const docs = dataset.corpus;
    for (let i = 0; i < docs.length; i += batchSize) {
      const batch = docs.slice(i, i + batchSize).map((d) => ({ id: d.id, text: documentText(d), ...(d.metadata ? { metadata: d.metadata } : {}) }));
      await search.upsertDocuments(COLLECTION, batch);
      progress('ingest', Math.min(i + batchSize, docs.length), docs.length);
    }
    const ingestSeconds = (performance.now() - t0) / 1000;
    const docIds = docs.map((d) => d.id);
    const matrix = new Float32Array(docs.length * dim);
    docs.forEach((d, i) => matrix.set(vectors.get(documentText(d))!, i * dim));

    // Every int8 code, for the int8 mode's full scan (the same scoreInt8 the rescoring uses).
    const collection = store.getCollection(COLLECTION)!;
    const int8 = new Int8Array(docs.length * dim);
    const rowOf = new Map(docIds.map((id, i) => [id, i]));
    for (const d of store.iterateDocuments(collection.id)) {
      const i = rowOf.get(d.docId)!;
      int8.set(new Int8Array(d.int8Code.buffer, d.int8Code.byteOffset, d.int8Code.length), i * dim);
    }

    // Queries: every query (fidelity), metrics over the judged ones.
    const t1 = performance.now();
    const queryIds = [...dataset.queries.keys()];
    const queryVectors: Float32Array[] = [];
    for (let i = 0; i < queryIds.length; i += batchSize) {
      const texts = queryIds.slice(i, i + batchSize).map((q) => dataset.queries.get(q)!);
      queryVectors.push(...(await encoder.embed(texts, { inputType: 'query', truncate: true })).vectors);
    }

    const runs = new Map<string, { top10: Map<string, Ranking>; top100: Map<string, Ranking> }>();
    const run = (name: string) => {
      if (!runs.has(name)) runs.set(name, { top10: new Map(), top100: new Map() });
      return runs.get(name)!;
    };
    const firstStage = { hamming: new Map<string, Ranking>(), asymmetric: new Map<string, Ranking>() };
    const scores = new Float64Array(docs.length);

    for (let qi = 0; qi < queryIds.length; qi++) {
      const qid = queryIds[qi]!;
      const q = queryVectors[qi]!;
      // float32: exact dot products (vectors are normalized: cosine).
      for (let i = 0; i < docs.length; i++) {
        let s = 0;
        for (let j = 0, o = i * dim; j < dim; j++) s += q[j]! * matrix[o + j]!;
        scores[i] = s;
      }
      const f32 = topIndices(scores, 100).map((i) => docIds[i]!);
      run('float32').top10.set(qid, f32.slice(0, 10));
      run('float32').top100.set(qid, f32);
      // int8: the float32 query against every int8 code.
      const folded = foldQuery(q, encoder.quantizer);
      for (let i = 0; i < docs.length; i++) scores[i] = scoreInt8(folded, int8, i * dim);
      const i8 = topIndices(scores, 100).map((i) => docIds[i]!);
      run('int8').top10.set(qid, i8.slice(0, 10));
      run('int8').top100.set(qid, i8);
      // binary and binary+int8: the service's search.
      const vector = Array.from(q);
      const ids = async (topK: number, rescore: boolean, multiplier = 1) =>
        (await search.search({ collection: COLLECTION, vector, topK, rescore, rescoreMultiplier: multiplier })).hits.map((h) => h.id);
      run('binary').top10.set(qid, await ids(10, false));
      run('binary').top100.set(qid, await ids(100, false));
      for (const m of multipliers) {
        run(`binary+int8@${m}`).top10.set(qid, await ids(10, true, m));
        run(`binary+int8@${m}`).top100.set(qid, await ids(100, true, m));
      }
      // First stages compared: top-40 by Hamming distance, and by a 4-bit query against the bits.
      firstStage.hamming.set(qid, (await search.search({ collection: COLLECTION, vector, topK: 40, rescore: false })).hits.map((h) => h.id));
      firstStage.asymmetric.set(qid, (await search.search({ collection: COLLECTION, vector, topK: 40, rescore: false, firstStage: 'asymmetric' })).hits.map((h) => h.id));
      progress('queries', qi + 1, queryIds.length);
    }
    const querySeconds = (performance.now() - t1) / 1000;

    const reference = run('float32').top10;
    const float32Ndcg = evaluateRankings(run('float32').top10, dataset.qrels)['ndcg@10'];
    const result = (mode: ModeResult['mode'], name: string, multiplier: number | null, bytes: number): ModeResult => {
      const r = runs.get(name)!;
      const at10 = evaluateRankings(r.top10, dataset.qrels);
      const at100 = evaluateRankings(r.top100, dataset.qrels);
      return {
        mode,
        rescore_multiplier: multiplier,
        'ndcg@10': at10['ndcg@10'],
        'recall@10': at10['recall@10'],
        'recall@100': at100['recall@100'],
        'mrr@10': at10['mrr@10'],
        retention: float32Ndcg === 0 ? 0 : at10['ndcg@10'] / float32Ndcg,
        'fidelity@10': fidelityAt(10, reference, r.top10),
        bytes_per_doc: bytes,
      };
    };
    const results: ModeResult[] = [
      result('float32', 'float32', null, bytesPerVector('float32', dim)),
      result('int8', 'int8', null, bytesPerVector('int8', dim)),
      result('binary', 'binary', null, binaryBytes),
      ...multipliers.map((m) => result('binary+int8', `binary+int8@${m}`, m, binaryBytes + bytesPerVector('int8', dim))),
    ];
    const first_stage: FirstStageResult[] = [
      { method: 'hamming', 'recall_float32_top10@40': fidelityAt(10, reference, firstStage.hamming, 40) },
      { method: 'asymmetric-4bit', 'recall_float32_top10@40': fidelityAt(10, reference, firstStage.asymmetric, 40) },
    ];
    const m = encoder.bundle.manifest;
    return {
      dataset: {
        name: dataset.name,
        path: dataset.dir,
        documents: docs.length,
        queries: queryIds.length,
        judged_queries: queryIds.filter((q) => dataset.qrels.has(q)).length,
      },
      model: { name: m.name, fingerprint: encoder.fingerprint, dimension: dim, weights: m.weights.precision },
      created_at: new Date().toISOString(),
      settings: { top_k: 10, recall_depth: 100, multipliers, code_bits: codeBits },
      results,
      first_stage,
      durations_s: { ingest: ingestSeconds, queries: querySeconds },
    };
  } finally {
    db.close();
  }
}
