/** A transforms row as both backends read it, and its float32 arrays as stored bytes. */
import type { StoredTransform, TransformInfo } from './store.js';

export interface TransformRow {
  collection_id: number;
  fingerprint: string;
  method: string;
  bits: number;
  dimension: number;
  mean?: Uint8Array;
  matrix?: Uint8Array;
  summary: string;
  created_at: string;
}

export const TRANSFORM_INFO_COLUMNS = 'collection_id, fingerprint, method, bits, dimension, summary, created_at';

/** float32 values as the little-endian bytes stored (a view: every platform Node runs on is little-endian). */
export const floatsOf = (a: Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Stored bytes as float32 values (copied: a blob's bytes need not be 4-byte aligned). */
const floats = (bytes: Uint8Array): Float32Array => new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));

export const toTransformInfo = (r: TransformRow): TransformInfo => ({
  collectionId: Number(r.collection_id),
  fingerprint: r.fingerprint,
  method: r.method,
  bits: r.bits,
  dimension: r.dimension,
  summary: r.summary,
  createdAt: r.created_at,
});

export const toTransform = (r: TransformRow): StoredTransform => ({ ...toTransformInfo(r), mean: floats(r.mean!), matrix: floats(r.matrix!) });
