/**
 * The asymmetric first stage (as RaBitQ and Qdrant's asymmetric query encoding do): the
 * document keeps its 1-bit code, but the query is not reduced to signs. It is quantized to 4
 * bits per dimension (symmetric levels k_i = round(q_i / Δ) in [-7, 7], Δ = max|q| / 7), and a
 * document scores Σ_i k_i · s_i with s_i = ±1 its sign bits — an estimate of q · x that keeps
 * the query's magnitudes, where Hamming distance keeps only its signs.
 *
 * Σ k_i s_i = 2 · Σ_{b_i = 1} k_i − Σ k_i; the last sum is the same for every document, so the
 * ranking needs Σ_{b_i = 1} k_i. The kernel (hamming-kernel.ts: asymmetricExpr) computes it
 * from 4 bit-planes of the query with ANDs and popcounts, as the distance
 * D = 7·dim − Σ_{b_i = 1} k_i in [0, 14·dim]; the reference scorer below reads it from one
 * 256-entry table per code byte. Everything the asymmetric query needs is in this file: its
 * encoding, what the kernel reads, its largest distance, and the cosine a distance stands for.
 */

/** An asymmetric query over codes of `bits` bits: its 4-bit levels, and their bit-planes as the kernel reads them. */
export interface AsymmetricQuery {
  readonly type: 'asymmetric';
  readonly bits: number;
  readonly levels: Int8Array;
  /** 4 planes of ⌈bits / 64⌉ · 8 bytes each (planesOf). */
  readonly planes: Uint8Array;
}

/** Levels run over [-7, 7], shifted by 7 into [0, 14] for the bit-planes. */
const LEVEL_MAX = 7;

export interface AsymmetricScorer {
  /** Rank score of the packed (ubinary) code at `offset` in `codes`: higher is closer. */
  score(codes: Uint8Array, offset: number): number;
}

/** The query's 4-bit levels k_i = round(q_i / Δ), Δ = max|q| / 7. */
export function quantizeQuery4bit(query: Float32Array): Int8Array {
  let max = 0;
  for (const x of query) max = Math.max(max, Math.abs(x));
  const levels = new Int8Array(query.length);
  if (max === 0) return levels;
  const delta = max / LEVEL_MAX;
  for (let i = 0; i < query.length; i++) levels[i] = Math.max(-LEVEL_MAX, Math.min(LEVEL_MAX, Math.round(query[i]! / delta)));
  return levels;
}

/**
 * The 4 bit-planes of u_i = k_i + 7 in [0, 14], each packed like a ubinary code (first
 * dimension in the most significant bit) and padded to a multiple of 8 bytes: what the
 * kernel's asymmetric scan reads (hamming-kernel.ts).
 */
function planesOf(levels: Int8Array): Uint8Array {
  const planeBytes = Math.ceil(levels.length / 64) * 8;
  const planes = new Uint8Array(4 * planeBytes);
  for (let i = 0; i < levels.length; i++) {
    const u = levels[i]! + LEVEL_MAX;
    for (let j = 0; j < 4; j++) if (u & (1 << j)) planes[j * planeBytes + (i >> 3)]! |= 0x80 >> (i & 7);
  }
  return planes;
}

/** The asymmetric query of a float32 query (its first dimensions: as many as the codes hold). */
export function asymmetricQuery(query: Float32Array): AsymmetricQuery {
  const levels = quantizeQuery4bit(query);
  return { type: 'asymmetric', bits: query.length, levels, planes: planesOf(levels) };
}

/** What the kernel reads for `q` over codes of `codeBytes` bytes, and the largest distance it can return. */
export function asymmetricKernelInput(q: AsymmetricQuery, codeBytes: number): { bytes: Uint8Array; maxDistance: number } {
  const planeBytes = Math.ceil(codeBytes / 8) * 8;
  if (q.bits !== codeBytes * 8) throw new Error(`an asymmetric query of ${q.bits} bits for codes of ${codeBytes * 8}`);
  if (q.planes.length !== 4 * planeBytes) throw new Error(`asymmetric planes must be 4 × ${planeBytes} bytes`);
  return { bytes: q.planes, maxDistance: 2 * LEVEL_MAX * q.bits };
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
  return cosineOf(quantizeQuery4bit(query));
}

/** asymmetricCosine of a query already quantized. */
export const asymmetricSimilarity = (q: AsymmetricQuery): ((distance: number) => number) => cosineOf(q.levels);

function cosineOf(levels: Int8Array): (distance: number) => number {
  let sum = 0;
  let squares = 0;
  for (const k of levels) {
    sum += k;
    squares += k * k;
  }
  const dim = levels.length;
  const norm = Math.sqrt(squares * dim) || 1;
  return (distance) => (2 * (LEVEL_MAX * dim - distance) - sum) / norm;
}
