/**
 * The first stage's query: one object that names its type and carries what that type scans
 * with. Search encodes a float32 query here (encodeQuery), the index hands it to the kernel
 * (kernelInput), and an answer that is not rescored is scored here (similarity). A new query or
 * code type (rotated, learned) is one more case in these three switches and its own module
 * beside them; nothing outside src/first-stage/ changes.
 */
import type { Quantizer } from '../quantization/quantize.js';
import { asymmetricVector, type CodeTransform, codeOf } from '../transform/transform.js';
import { type AsymmetricQuery, asymmetricKernelInput, asymmetricQuery, asymmetricSimilarity } from './asymmetric.js';

/** The first stages a search may ask for (the API's `first_stage`). */
export const FIRST_STAGE_TYPES = ['hamming', 'asymmetric'] as const;
export type FirstStageType = (typeof FIRST_STAGE_TYPES)[number];

/** A Hamming query: the packed signs of the query's first `bits` dimensions, as the documents' codes are packed. */
export interface HammingQuery {
  readonly type: 'hamming';
  readonly bits: number;
  readonly code: Uint8Array;
}

export type { AsymmetricQuery } from './asymmetric.js';
export type FirstStageQuery = HammingQuery | AsymmetricQuery;

export const hammingQuery = (code: Uint8Array): HammingQuery => ({ type: 'hamming', bits: code.length * 8, code });

/**
 * The query of `type` for a collection whose first stage holds `bits` bits of each code (the
 * first dimensions'); `quantizer` packs signs exactly as the documents' codes were packed. With
 * a `transform` (src/transform/) the codes are its signs instead: a Hamming query is coded as a
 * document is, an asymmetric one scores with the transformed query.
 */
export function encodeQuery(type: FirstStageType, vector: Float32Array, bits: number, quantizer: Pick<Quantizer, 'toUbinary'>, transform?: CodeTransform): FirstStageQuery {
  if (transform?.matrix) {
    if (transform.bits !== bits) throw new Error(`a ${transform.bits}-bit transform for a ${bits}-bit first stage`);
    return type === 'hamming' ? hammingQuery(codeOf(transform, vector)) : asymmetricQuery(asymmetricVector(transform, vector));
  }
  switch (type) {
    case 'hamming':
      return hammingQuery(quantizer.toUbinary(vector).subarray(0, bits / 8));
    case 'asymmetric':
      return asymmetricQuery(vector.subarray(0, bits));
  }
}

/** What the kernel reads at its query address, which of its scans runs, and the largest distance it can return. */
export interface KernelInput {
  bytes: Uint8Array;
  asymmetric: boolean;
  maxDistance: number;
}

/** The kernel's input for `q` over codes of `codeBytes` bytes; throws when `q` is for another code length. */
export function kernelInput(q: FirstStageQuery, codeBytes: number): KernelInput {
  switch (q.type) {
    case 'hamming':
      if (q.code.length !== codeBytes) throw new Error(`a Hamming query of ${q.code.length} bytes for codes of ${codeBytes}`);
      return { bytes: q.code, asymmetric: false, maxDistance: q.bits };
    case 'asymmetric':
      return { ...asymmetricKernelInput(q, codeBytes), asymmetric: true };
  }
}

/** The score in [-1, 1] a first-stage distance stands for, when the candidates are not rescored. */
export function similarity(q: FirstStageQuery): (distance: number) => number {
  switch (q.type) {
    case 'hamming':
      return (d) => 1 - (2 * d) / q.bits;
    case 'asymmetric':
      return asymmetricSimilarity(q);
  }
}
