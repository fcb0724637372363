/**
 * The exact top-k of many queries over nested subsets of the documents (rows [0, N) for each N
 * asked for), by a linear score: float32 query · float32 document, or the folded int8 score that
 * rescoring and the service's recall measurement rank by (quantization/dequantize.ts: bias +
 * Σ weights_i · code_i). One pass over the documents serves every N: each query's top-k is read
 * off as the scan passes N.
 *
 * Ranks as src/quality/exact.ts does (its TopK: score descending, then row ascending). Each
 * score is summed in scoreInt8's order (dimension 0 up, in float64), so the int8 scores are
 * bit-identical to the service's and ties fall the same way (test/unit/recall-measure.test.ts).
 *
 * Speed, since the full corpus is ~220k documents × ~2,100 queries × 384 dimensions per
 * reference: documents are taken in blocks that stay in cache while every query passes over
 * them, and the inner loop runs 4 queries × 2 documents at once: eight independent sums keep
 * the floating-point adders busy where one sum would wait on its own latency (3-4x faster on
 * an AMD EPYC, measured while writing this).
 */
import { TopK } from '../../src/quality/exact.js';

/** Documents scored per block: 64 float32 rows of 384 dimensions are 96 KiB, within L2. */
const BLOCK = 64;
/** Queries per pass of the inner loop (the unrolling below). */
const GROUP = 4;

export interface LinearQueries {
  /** One row of `dimension` weights per query, row-major. */
  weights: Float32Array;
  /** Added to each query's sum (the folded int8 score's bias); none for a plain dot product. */
  bias?: Float64Array;
}

/**
 * Per size (ascending, each ≤ the documents' rows), per query: the rows of its exact top `k`
 * over rows [0, size), best first. `progress(rowsDone)` is called after each block.
 */
export function exactTopK(
  documents: Float32Array | Int8Array,
  dimension: number,
  queries: LinearQueries,
  sizes: readonly number[],
  k: number,
  progress?: (rows: number) => void,
): number[][][] {
  const rows = documents.length / dimension;
  const count = queries.weights.length / dimension;
  for (let i = 0; i < sizes.length; i++) {
    if (sizes[i]! > rows || (i > 0 && sizes[i]! <= sizes[i - 1]!)) throw new Error(`sizes must ascend and be at most ${rows}: ${sizes.join(', ')}`);
  }
  // Padded with zero queries to whole groups: their scores are computed and dropped.
  const weights = new Float32Array(Math.ceil(count / GROUP) * GROUP * dimension);
  weights.set(queries.weights);
  const tops = Array.from({ length: count }, () => new TopK(k));
  const scores = new Float64Array(GROUP * BLOCK);
  const out: number[][][] = [];
  let start = 0;
  for (const size of sizes) {
    while (start < size) {
      const end = Math.min(size, start + BLOCK);
      for (let q = 0; q < count; q += GROUP) {
        scoreBlock(weights, q, dimension, documents, start, end, scores);
        for (let t = 0; t < GROUP && q + t < count; t++) {
          const top = tops[q + t]!;
          const bias = queries.bias ? queries.bias[q + t]! : 0;
          for (let j = start; j < end; j++) top.offer(j, bias + scores[t * BLOCK + j - start]!);
        }
      }
      start = end;
      progress?.(start);
    }
    out.push(tops.map((top) => top.rowids.slice()));
  }
  return out;
}

/**
 * Sums of queries q..q+3 (rows of `weights`) with documents [start, end): into
 * scores[t · BLOCK + (j − start)] for query q + t and document j.
 */
function scoreBlock(weights: Float32Array, q: number, dim: number, docs: Float32Array | Int8Array, start: number, end: number, scores: Float64Array): void {
  const w0 = q * dim;
  const w1 = w0 + dim;
  const w2 = w1 + dim;
  const w3 = w2 + dim;
  let j = start;
  for (; j + 1 < end; j += 2) {
    const a = j * dim;
    const b = a + dim;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    let t0 = 0;
    let t1 = 0;
    let t2 = 0;
    let t3 = 0;
    for (let i = 0; i < dim; i++) {
      const x = docs[a + i]!;
      const y = docs[b + i]!;
      const c0 = weights[w0 + i]!;
      const c1 = weights[w1 + i]!;
      const c2 = weights[w2 + i]!;
      const c3 = weights[w3 + i]!;
      s0 += c0 * x;
      s1 += c1 * x;
      s2 += c2 * x;
      s3 += c3 * x;
      t0 += c0 * y;
      t1 += c1 * y;
      t2 += c2 * y;
      t3 += c3 * y;
    }
    const at = j - start;
    scores[at] = s0;
    scores[BLOCK + at] = s1;
    scores[2 * BLOCK + at] = s2;
    scores[3 * BLOCK + at] = s3;
    scores[at + 1] = t0;
    scores[BLOCK + at + 1] = t1;
    scores[2 * BLOCK + at + 1] = t2;
    scores[3 * BLOCK + at + 1] = t3;
  }
  if (j < end) {
    // An odd block's last document.
    const a = j * dim;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    for (let i = 0; i < dim; i++) {
      const x = docs[a + i]!;
      s0 += weights[w0 + i]! * x;
      s1 += weights[w1 + i]! * x;
      s2 += weights[w2 + i]! * x;
      s3 += weights[w3 + i]! * x;
    }
    const at = j - start;
    scores[at] = s0;
    scores[BLOCK + at] = s1;
    scores[2 * BLOCK + at] = s2;
    scores[3 * BLOCK + at] = s3;
  }
}
