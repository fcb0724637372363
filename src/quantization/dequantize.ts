/**
 * Scoring a float32 query against int8 document codes without materializing float32
 * documents. An int8 code c stands for the bucket [min + (c + 128)·step, min + (c + 129)·step),
 * whose centre is x̂ = min + (c + 128.5)·step. Then
 *
 *   q · x̂ = Σ q_i·min_i + Σ q_i·step_i·(c_i + 128.5) = bias + Σ w_i·c_i
 *
 * with w_i = q_i·step_i and bias = Σ q_i·(min_i + 128.5·step_i): the query absorbs the
 * per-dimension scale and offset once per search, and each candidate costs one dot product
 * with its raw int8 code. (sentence-transformers dequantizes to the bucket's lower edge; the
 * centre differs by a constant per query, so rankings are identical and scores are closer to
 * the float32 cosine.) Scoring q · c against raw codes instead ignores the per-dimension
 * ranges and can reverse rankings.
 */
import type { Quantizer } from './quantize.js';

/** A float32 query folded with a bundle's ranges: score(code) = bias + Σ weights[i] · code[i]. */
export interface FoldedQuery {
  readonly weights: Float32Array;
  readonly bias: number;
}

export function foldQuery(query: Float32Array, quantizer: Quantizer): FoldedQuery {
  const { dimension, steps } = quantizer;
  const min = quantizer.ranges.min;
  if (query.length !== dimension) throw new Error(`expected ${dimension} dimensions, got ${query.length}`);
  const weights = new Float32Array(dimension);
  let bias = 0;
  for (let i = 0; i < dimension; i++) {
    weights[i] = query[i]! * steps[i]!;
    bias += query[i]! * (min[i]! + 128.5 * steps[i]!);
  }
  return { weights, bias };
}

/** Approximate q · x for the document whose int8 code starts at `offset` in `codes`. */
export function scoreInt8(folded: FoldedQuery, codes: Int8Array, offset = 0): number {
  const w = folded.weights;
  const n = w.length;
  let acc = 0;
  for (let i = 0; i < n; i++) acc += w[i]! * codes[offset + i]!;
  return folded.bias + acc;
}

/** The float32 vector an int8 code stands for (bucket centres); for evaluation and tests. */
export function dequantizeInt8(code: Int8Array, quantizer: Quantizer): Float32Array {
  const out = new Float32Array(quantizer.dimension);
  const min = quantizer.ranges.min;
  for (let i = 0; i < out.length; i++) out[i] = min[i]! + quantizer.steps[i]! * (code[i]! + 128.5);
  return out;
}
