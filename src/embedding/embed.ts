/**
 * Embedding texts for an API answer: one forward pass, then any number of precisions of the
 * same vectors, optionally truncated to fewer dimensions first. /encode, the OpenAI-compatible
 * /v1/embeddings and the Cohere-compatible /v2/embed all answer through here; they differ only
 * in the shapes of their requests and answers.
 *
 * Dimensions (Matryoshka): the first `dimensions` values of the float32 embedding, divided by
 * their norm so that the vector stays a unit vector (cosine = dot product). int8/uint8 then use
 * the calibration ranges of the kept dimensions (bucket edges do not depend on the norm of the
 * others); binary/ubinary pack the signs of the kept dimensions, which renormalizing cannot
 * change, so their length must be a multiple of 8.
 */
import { type InputType, namesBundle } from '../encoder/bundle.js';
import type { Encoder } from '../encoder/encoder.js';
import { errors } from '../errors.js';
import { createQuantizer, type Precision, type QuantizedVector, type Quantizer } from '../quantization/quantize.js';

export interface EmbedRequest {
  texts: readonly string[];
  /** The model the caller expects (fingerprint or name): 409 QEMBED_MODEL_MISMATCH when the encoder is another. */
  expectModel?: string;
  inputType: InputType;
  /** Cut texts past the model's max tokens (true) or refuse them with 413 (false). */
  truncate: boolean;
  /** Keep only the first `dimensions` dimensions (then renormalize); default: all of them. */
  dimensions?: number;
  /** The precisions to return, each computed from the same float32 vectors. */
  precisions: readonly Precision[];
  /** Texts handed to the model queue at a time (one request's share of it); default: all. */
  batchSize?: number;
}

export interface EmbedResult {
  /** Dimensions of each returned float32 vector. */
  dimension: number;
  vectors: Map<Precision, QuantizedVector[]>;
  /** Tokens the model saw for each text, prompt and special tokens included. */
  tokens: number[];
  truncated: number[];
}

/** Why `dimensions` cannot be served for these precisions, or undefined when it can. */
export function dimensionsProblem(dimensions: number, modelDimension: number, precisions: readonly Precision[]): string | undefined {
  if (!Number.isInteger(dimensions) || dimensions < 1 || dimensions > modelDimension) {
    return `dimensions must be an integer from 1 to ${modelDimension} (the model's dimension), got ${dimensions}`;
  }
  if (dimensions % 8 !== 0 && precisions.some((p) => p === 'binary' || p === 'ubinary')) {
    return `dimensions ${dimensions}: binary and ubinary pack 8 dimensions a byte, so dimensions must be a multiple of 8`;
  }
  return undefined;
}

/** First `k` dimensions of `vector` scaled to unit length (a zero vector stays zero). */
export function truncateVector(vector: Float32Array, k: number): Float32Array {
  const out = vector.slice(0, k);
  let norm = 0;
  for (let i = 0; i < k; i++) norm += out[i]! * out[i]!;
  norm = Math.sqrt(norm);
  if (norm > 0) for (let i = 0; i < k; i++) out[i] = out[i]! / norm;
  return out;
}

// Quantizers of truncated vectors, by encoder and kept dimensions (the ranges are views).
const truncatedQuantizers = new WeakMap<Quantizer, Map<number, Quantizer>>();

function quantizerFor(encoder: Encoder, k: number): Quantizer {
  const full = encoder.quantizer;
  if (k === full.dimension) return full;
  let byK = truncatedQuantizers.get(full);
  if (!byK) truncatedQuantizers.set(full, (byK = new Map()));
  let q = byK.get(k);
  if (!q) byK.set(k, (q = createQuantizer({ min: full.ranges.min.subarray(0, k), max: full.ranges.max.subarray(0, k) })));
  return q;
}

export async function embedTexts(encoder: Encoder, request: EmbedRequest): Promise<EmbedResult> {
  const expected = request.expectModel;
  if (expected !== undefined && !namesBundle(encoder.bundle, expected)) {
    throw errors.modelMismatch(`model "${expected}" is not served; this service serves ${encoder.bundle.manifest.name} (fingerprint ${encoder.fingerprint})`);
  }
  const k = request.dimensions ?? encoder.dimension;
  const problem = dimensionsProblem(k, encoder.dimension, request.precisions);
  if (problem) throw errors.invalidDimensions(problem, { field: 'dimensions' });
  const step = Math.max(1, request.batchSize ?? request.texts.length);
  const floats: Float32Array[] = [];
  const tokens: number[] = [];
  const truncated: number[] = [];
  for (let i = 0; i < request.texts.length; i += step) {
    const embedded = await encoder.embed(request.texts.slice(i, i + step), { inputType: request.inputType, truncate: request.truncate });
    floats.push(...(k === encoder.dimension ? embedded.vectors : embedded.vectors.map((v) => truncateVector(v, k))));
    tokens.push(...embedded.tokens);
    truncated.push(...embedded.truncated.map((j) => i + j));
  }
  const quantizer = quantizerFor(encoder, k);
  const vectors = new Map<Precision, QuantizedVector[]>();
  for (const precision of request.precisions) vectors.set(precision, floats.map((v) => quantizer.quantize(v, precision)));
  return { dimension: k, vectors, tokens, truncated };
}
