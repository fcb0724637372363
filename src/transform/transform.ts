/**
 * First-stage code transforms: what turns a vector into the bits the first stage scans.
 *
 * A transform of code length b maps a vector x of d dimensions to y = W (x − μ), b values, and
 * the code is their signs (bit j is 1 where y_j > 0, packed as quantize.ts packs ubinary: bit 0
 * is the most significant bit of byte 0). Served today: first dims (W = the first b rows of the
 * identity, μ = 0: the sign of the first b dimensions). The others: a seeded random rotation
 * (the RaBitQ / TurboQuant baseline: the first b rows of a random orthogonal matrix, μ = 0) and
 * a transform fitted on a collection's own documents by the worker (ITQ or quantization-aware
 * training: artifact.ts reads it).
 *
 * The query side: a Hamming query is coded exactly as a document is; the asymmetric first stage
 * scores the float query against the codes, and ranks by ⟨W q, sign(y)⟩ with the query not
 * centred: for a document x ≈ μ + c·Wᵀ sign(y), ⟨q, x⟩ ≈ ⟨q, μ⟩ + c ⟨W q, sign(y)⟩, the first term
 * the same for every document.
 *
 * Documents' codes are recomputed from their stored int8 codes, without the model
 * (codesFromInt8): the int8 code c stands for x̂ = min + (c + 128.5)·step (dequantize.ts), so
 * y_j = Σ_i W_ji·step_i·c_i + Σ_i W_ji·(min_i + 128.5·step_i − μ_i): each row of W is a query
 * folded with the ranges (foldQuery) scored against the raw codes: by the WebAssembly SIMD kernel
 * (sign-kernel.ts: each row rounded to int16, exact integer sums; 6-10x the scalar scan in
 * bench:transform-codes) where it runs, else by linear-scan.ts's float64 scan of many rows and
 * documents at once.
 */
import { foldQuery } from '../quantization/dequantize.js';
import { BLOCK, GROUP, scoreBlock } from '../quantization/linear-scan.js';
import type { Quantizer } from '../quantization/quantize.js';
import { createSignKernel, int16Rows, signKernelServes } from './sign-kernel.js';

/** How a transform was made. */
export const TRANSFORM_METHODS = ['first-dims', 'rotation', 'itq', 'qat'] as const;
export type TransformMethod = (typeof TRANSFORM_METHODS)[number];

export interface CodeTransform {
  readonly method: TransformMethod;
  /** Names it: `first-dims`, `rotation-<seed>`, or the fitted artifact's fingerprint. */
  readonly fingerprint: string;
  readonly dimension: number;
  /** The code length it makes. */
  readonly bits: number;
  /** Subtracted before projecting (zeros but for fitted transforms). */
  readonly mean: Float32Array;
  /** bits × dimension, row-major: row j makes bit j. Null for first dims (row j is dimension j). */
  readonly matrix: Float32Array | null;
}

/** A transform problem: a shape that does not fit, a code length it cannot make. */
export class TransformError extends Error {}

function checkBits(dimension: number, bits: number): void {
  if (!Number.isInteger(bits) || bits <= 0 || bits % 8 !== 0 || bits > dimension) {
    throw new TransformError(`a code length is a positive multiple of 8 bits, at most the dimension ${dimension}: not ${bits}`);
  }
}

/** The sign of the first `bits` dimensions: today's codes. */
export function firstDims(dimension: number, bits: number): CodeTransform {
  checkBits(dimension, bits);
  return { method: 'first-dims', fingerprint: 'first-dims', dimension, bits, mean: new Float32Array(dimension), matrix: null };
}

/** A transform from its parts (a fitted artifact's), its shapes checked. */
export function linearTransform(method: TransformMethod, fingerprint: string, mean: Float32Array, matrix: Float32Array, bits: number): CodeTransform {
  const dimension = mean.length;
  checkBits(dimension, bits);
  if (matrix.length !== bits * dimension) throw new TransformError(`a ${bits}-bit transform of ${dimension} dimensions has ${bits * dimension} weights, not ${matrix.length}`);
  for (const v of matrix) if (!Number.isFinite(v)) throw new TransformError('a transform weight is not a finite number');
  for (const v of mean) if (!Number.isFinite(v)) throw new TransformError('a transform mean is not a finite number');
  return { method, fingerprint, dimension, bits, mean, matrix };
}

/**
 * The first `bits` rows of a random orthogonal d × d matrix, the same for the same seed on every
 * machine: Gaussian rows (xorshift32 and Box–Muller, in float64) made orthonormal by modified
 * Gram–Schmidt twice (in float64, which keeps the rows orthogonal to ~1e-15 before the float32
 * rounding), then rounded to float32.
 */
export function seededRotation(dimension: number, bits: number, seed = 1): CodeTransform {
  checkBits(dimension, bits);
  let state = seed >>> 0 || 1;
  const uniform = () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return (state + 0.5) / 4294967296; // in (0, 1): log never sees 0
  };
  const gaussian = () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  const rows: Float64Array[] = [];
  for (let j = 0; j < bits; j++) {
    const r = Float64Array.from({ length: dimension }, gaussian);
    for (let pass = 0; pass < 2; pass++) {
      for (const prev of rows) {
        let dot = 0;
        for (let i = 0; i < dimension; i++) dot += r[i]! * prev[i]!;
        for (let i = 0; i < dimension; i++) r[i]! -= dot * prev[i]!;
      }
    }
    let norm = 0;
    for (let i = 0; i < dimension; i++) norm += r[i]! * r[i]!;
    norm = Math.sqrt(norm);
    for (let i = 0; i < dimension; i++) r[i]! /= norm;
    rows.push(r);
  }
  const matrix = new Float32Array(bits * dimension);
  rows.forEach((r, j) => matrix.set(r, j * dimension));
  return { method: 'rotation', fingerprint: `rotation-${seed >>> 0}`, dimension, bits, mean: new Float32Array(dimension), matrix };
}

function checkVector(t: CodeTransform, vector: Float32Array): void {
  if (vector.length !== t.dimension) throw new TransformError(`expected ${t.dimension} dimensions, got ${vector.length}`);
}

/** y = W (x − μ), in float64 sums of float32 products, dimension order. */
export function project(t: CodeTransform, vector: Float32Array): Float64Array {
  checkVector(t, vector);
  const { dimension: d, bits, mean, matrix } = t;
  const y = new Float64Array(bits);
  if (!matrix) {
    for (let j = 0; j < bits; j++) y[j] = vector[j]! - mean[j]!;
    return y;
  }
  for (let j = 0; j < bits; j++) {
    let s = 0;
    for (let i = 0; i < d; i++) s += matrix[j * d + i]! * (vector[i]! - mean[i]!);
    y[j] = s;
  }
  return y;
}

/** Packs the signs of `y` (1 where > 0), most significant bit first. */
export function packSigns(y: ArrayLike<number>, out = new Uint8Array(Math.ceil(y.length / 8))): Uint8Array {
  out.fill(0);
  for (let j = 0; j < y.length; j++) if (y[j]! > 0) out[j >> 3]! |= 0x80 >> (j & 7);
  return out;
}

/** The code of a document vector (and of a Hamming query). */
export const codeOf = (t: CodeTransform, vector: Float32Array): Uint8Array => packSigns(project(t, vector));

/** What the asymmetric first stage scores against the codes: W q (the query not centred), as float32. */
export function asymmetricVector(t: CodeTransform, query: Float32Array): Float32Array {
  checkVector(t, query);
  if (!t.matrix) return query.subarray(0, t.bits);
  const { dimension: d, bits, matrix } = t;
  const out = new Float32Array(bits);
  for (let j = 0; j < bits; j++) {
    let s = 0;
    for (let i = 0; i < d; i++) s += matrix[j * d + i]! * query[i]!;
    out[j] = s;
  }
  return out;
}

/** Recomputes codes from int8 codes; built once per transform and quantizer (its rows folded). */
export interface Int8Coder {
  /** What computes the bits: first dims' comparisons, the SIMD kernel (sign-kernel.ts) or the scalar scan. */
  readonly kernel: 'first-dims' | 'simd' | 'scalar';
  /** Codes of `count` int8 codes (rows of `codes`, d each) into `out` (bits / 8 bytes each). */
  encode(codes: Int8Array, count: number, out: Uint8Array): void;
}

export interface Int8CoderOptions {
  /** Keep the scalar float64 scan where the SIMD kernel would run (to compare the two). */
  scalar?: boolean;
}

export function int8Coder(t: CodeTransform, quantizer: Quantizer, options: Int8CoderOptions = {}): Int8Coder {
  const { dimension: d, bits, mean, matrix } = t;
  if (quantizer.dimension !== d) throw new TransformError(`a transform of ${d} dimensions for a model of ${quantizer.dimension}`);
  const bytes = bits / 8;
  const { steps } = quantizer;
  const { min } = quantizer.ranges;
  if (!matrix) {
    // First dims: bit j is x̂_j − μ_j > 0, with x̂_j as dequantize.ts computes it.
    return {
      kernel: 'first-dims',
      encode(codes, count, out) {
        out.fill(0, 0, count * bytes);
        for (let n = 0; n < count; n++) {
          for (let j = 0; j < bits; j++) {
            if (min[j]! + (codes[n * d + j]! + 128.5) * steps[j]! - mean[j]! > 0) out[n * bytes + (j >> 3)]! |= 0x80 >> (j & 7);
          }
        }
      },
    };
  }
  // Each row folded as a query: weights W_j ⊙ step, bias ⟨W_j, min + 128.5·step⟩ − ⟨W_j, μ⟩.
  const rows = Math.ceil(bits / GROUP) * GROUP;
  const weights = new Float32Array(rows * d);
  const bias = new Float64Array(bits);
  for (let j = 0; j < bits; j++) {
    const row = matrix.subarray(j * d, (j + 1) * d);
    const folded = foldQuery(row, quantizer);
    weights.set(folded.weights, j * d);
    let centre = 0;
    for (let i = 0; i < d; i++) centre += row[i]! * mean[i]!;
    bias[j] = folded.bias - centre;
  }
  if (!options.scalar && signKernelServes(d)) {
    const encode = createSignKernel(int16Rows(weights.subarray(0, bits * d), bias, d, bits), d, bits);
    return { kernel: 'simd', encode };
  }
  const scores = new Float64Array(GROUP * BLOCK);
  return {
    kernel: 'scalar',
    encode(codes, count, out) {
      out.fill(0, 0, count * bytes);
      for (let start = 0; start < count; start += BLOCK) {
        const end = Math.min(count, start + BLOCK);
        for (let q = 0; q < bits; q += GROUP) {
          scoreBlock(weights, q, d, codes, start, end, scores);
          for (let t = 0; t < GROUP && q + t < bits; t++) {
            const j = q + t;
            const b = bias[j]!;
            const mask = 0x80 >> (j & 7);
            for (let n = start; n < end; n++) if (b + scores[t * BLOCK + (n - start)]! > 0) out[n * bytes + (j >> 3)]! |= mask;
          }
        }
      }
    },
  };
}
