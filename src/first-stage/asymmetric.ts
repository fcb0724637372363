/**
 * Asymmetric first-stage scoring (as RaBitQ and Qdrant's asymmetric query encoding do): the
 * document keeps its 1-bit code, but the query is not reduced to signs. It is quantized to 4
 * bits per dimension (symmetric levels k_i = round(q_i / Δ) in [-7, 7], Δ = max|q| / 7), and a
 * document scores Σ_i k_i · s_i with s_i = ±1 its sign bits — an estimate of q · x that keeps
 * the query's magnitudes, where Hamming distance keeps only its signs.
 *
 * Σ k_i s_i = 2 · Σ_{b_i = 1} k_i − Σ k_i; the last sum is the same for every document, so the
 * ranking needs Σ_{b_i = 1} k_i. This reference implementation reads it from one 256-entry
 * table per code byte; a kernel would compute it with bit-plane ANDs and popcounts.
 */

export interface AsymmetricScorer {
  /** Rank score of the packed (ubinary) code at `offset` in `codes`: higher is closer. */
  score(codes: Uint8Array, offset: number): number;
}

export function quantizeQuery4bit(query: Float32Array): Int8Array {
  let max = 0;
  for (const x of query) max = Math.max(max, Math.abs(x));
  const levels = new Int8Array(query.length);
  if (max === 0) return levels;
  const delta = max / 7;
  for (let i = 0; i < query.length; i++) levels[i] = Math.max(-7, Math.min(7, Math.round(query[i]! / delta)));
  return levels;
}

/**
 * The 4 bit-planes of u_i = k_i + 7 in [0, 14], each packed like a ubinary code (first
 * dimension in the most significant bit) and padded to a multiple of 8 bytes: what the
 * kernel's asymmetric scan reads (hamming-kernel.ts).
 */
export function queryPlanes(query: Float32Array): Uint8Array {
  const levels = quantizeQuery4bit(query);
  const planeBytes = Math.ceil(query.length / 64) * 8;
  const planes = new Uint8Array(4 * planeBytes);
  for (let i = 0; i < query.length; i++) {
    const u = levels[i]! + 7;
    for (let j = 0; j < 4; j++) if (u & (1 << j)) planes[j * planeBytes + (i >> 3)]! |= 0x80 >> (i & 7);
  }
  return planes;
}

export function asymmetricScorer(query: Float32Array): AsymmetricScorer {
  const levels = quantizeQuery4bit(query);
  const bytes = Math.ceil(query.length / 8);
  const tables = new Int16Array(bytes * 256);
  for (let j = 0; j < bytes; j++) {
    for (let v = 0; v < 256; v++) {
      let s = 0;
      for (let bit = 0; bit < 8; bit++) {
        const dim = j * 8 + bit;
        // The first dimension of a byte is its most significant bit (packbits order).
        if (dim < query.length && v & (0x80 >> bit)) s += levels[dim]!;
      }
      tables[j * 256 + v] = s;
    }
  }
  return {
    score(codes, offset) {
      let s = 0;
      for (let j = 0; j < bytes; j++) s += tables[j * 256 + codes[offset + j]!]!;
      return s;
    },
  };
}

/**
 * Turns the kernel's asymmetric distance D = 7·dim − Σ_{b_i = 1} k_i into the cosine between the
 * quantized query k and the document's sign vector s (±1): (2·Σ_{b=1} k − Σ k) / (‖k‖·√dim).
 */
export function asymmetricCosine(query: Float32Array): (distance: number) => number {
  const levels = quantizeQuery4bit(query);
  let sum = 0;
  let squares = 0;
  for (const k of levels) {
    sum += k;
    squares += k * k;
  }
  const dim = query.length;
  const norm = Math.sqrt(squares * dim) || 1;
  return (distance) => (2 * (7 * dim - distance) - sum) / norm;
}
