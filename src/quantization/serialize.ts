/** Vectors on the wire: JSON arrays, or base64 of the exact packed bytes (float32 little-endian). */
import { endianness } from 'node:os';
import type { QuantizedVector } from './quantize.js';

export const ENCODINGS = ['json', 'base64'] as const;
export type VectorEncoding = (typeof ENCODINGS)[number];

// Typed arrays use the host byte order; the wire format is little-endian.
if (endianness() !== 'LE') throw new Error('qembed needs a little-endian host');

export function serializeVector(vector: QuantizedVector, encoding: VectorEncoding): number[] | string {
  if (encoding === 'json') return Array.from(vector);
  return Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString('base64');
}

/** Inverse of serializeVector for base64 float32 input (e.g. search by vector). */
export function float32FromBase64(text: string): Float32Array {
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length % 4 !== 0) throw new Error('base64 float32 vectors must be a multiple of 4 bytes');
  const copy = new Uint8Array(bytes);
  return new Float32Array(copy.buffer, 0, copy.length / 4);
}
