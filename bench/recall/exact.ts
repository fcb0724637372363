/**
 * The exact top-k of many queries over nested subsets of the documents (rows [0, N) for each N
 * asked for), by a linear score: float32 query · float32 document, or the folded int8 score that
 * rescoring and the service's recall measurement rank by (quantization/dequantize.ts: bias +
 * Σ weights_i · code_i). One pass over the documents serves every N: each query's top-k is read
 * off as the scan passes N.
 *
 * Ranks as src/quality/exact.ts does (its TopK: score descending, then row ascending), with the
 * service's own kernel (src/quality/linear-scan.ts): each score summed in scoreInt8's order, so
 * the int8 scores are bit-identical to rescoring's and ties fall the same way
 * (test/unit/recall-measure.test.ts), at the speed ~245k documents × ~2,500 queries × 384
 * dimensions per reference needs.
 */
import { TopK } from '../../src/quality/exact.js';
import { BLOCK, GROUP, scoreBlock } from '../../src/quantization/linear-scan.js';

export interface LinearQueries {
  /** One row of `dimension` weights per query, row-major. */
  weights: Float32Array;
  /** Added to each query's sum (the folded int8 score's bias); none for a plain dot product. */
  bias?: Float64Array;
}

/** One query's exact top-k over one subset: rows best first, and their scores. */
export interface ExactTop {
  rows: number[];
  scores: number[];
}

/**
 * Per size (ascending, each ≤ the documents' rows), per query: its exact top `k` over rows
 * [0, size). `progress(rowsDone)` is called after each block.
 */
export function exactTopK(
  documents: Float32Array | Int8Array,
  dimension: number,
  queries: LinearQueries,
  sizes: readonly number[],
  k: number,
  progress?: (rows: number) => void,
): ExactTop[][] {
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
  const out: ExactTop[][] = [];
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
    out.push(tops.map((top) => ({ rows: top.rowids.slice(), scores: top.scores.slice() })));
  }
  return out;
}
