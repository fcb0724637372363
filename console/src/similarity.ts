/** Similarities between vectors decoded from /encode's base64, as each precision is compared. */
import type { Precision } from './types.js';

export function fromBase64(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** The vector's components as numbers: float32 little-endian, int8 signed, uint8 centred on 128. */
function components(bytes: Uint8Array, precision: Precision): Float64Array {
  if (precision === 'float32') return Float64Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));
  if (precision === 'int8') return Float64Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  return Float64Array.from(bytes, (b) => b - 128);
}

export function cosine(a: Float64Array, b: Float64Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

export function hamming(a: Uint8Array, b: Uint8Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) {
    let x = a[i]! ^ b[i]!;
    while (x) {
      x &= x - 1;
      d++;
    }
  }
  return d;
}

export const isBits = (p: Precision) => p === 'binary' || p === 'ubinary';

/** The matrix shown for a precision: cosines, or Hamming distances for packed bits. */
export function similarityMatrix(vectors: Uint8Array[], precision: Precision): number[][] {
  if (isBits(precision)) return vectors.map((a) => vectors.map((b) => hamming(a, b)));
  const xs = vectors.map((v) => components(v, precision));
  return xs.map((a) => xs.map((b) => cosine(a, b)));
}
