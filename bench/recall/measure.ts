/**
 * Label-free recall of the served search at several corpus sizes: for nested subsets (rows
 * [0, N) of the documents), every code length and both first stages, how much of the exact
 * top-10 the first stage keeps among its top_k × m candidates, and the recall@10 left after
 * int8 rescoring of those candidates. Two exact references: float32 (query · document) and int8
 * (the folded int8 score: what rescoring ranks by, and the reference of the service's own
 * recall estimate, src/quality/).
 *
 * Everything scored here goes through the service's code: codes from the bundle's quantizer,
 * the first stage's query encoding (first-stage/query.ts), its index and WebAssembly kernel
 * (first-stage/binary-index.ts: ties by distance then row), foldQuery / scoreInt8 for
 * rescoring, with the service's rescoring order (score, then distance, then row:
 * src/search/query.ts). As in src/quality/measure.ts, a query's first-stage result is the
 * positions of its exact top-10 in the first stage's order, from which the recall at every
 * multiplier follows.
 *
 * A document is its row: row r of `documents` is rowid r in the index and in the exact top-10.
 */
import { createBinaryIndex } from '../../src/first-stage/binary-index.js';
import { encodeQuery, type FirstStageType } from '../../src/first-stage/query.js';
import { createScanPool } from '../../src/first-stage/scan-pool.js';
import { MULTIPLIER_MAX, NOT_FOUND, RECALL_AT } from '../../src/quality/estimate.js';
import { type FoldedQuery, foldQuery, scoreInt8 } from '../../src/quantization/dequantize.js';
import type { Quantizer } from '../../src/quantization/quantize.js';
import { type CodeTransform, int8Coder } from '../../src/transform/transform.js';
import { xorshift32 } from '../../test/helpers/random.js';
import { type ExactTop, exactTopK } from './exact.js';

/** The two exact references a first stage is measured against. */
export const REFERENCES = ['float32', 'int8'] as const;
export type Reference = (typeof REFERENCES)[number];
export type Recalls = Record<Reference, number>;

export interface RecallSettings {
  /** Subset sizes, ascending, each at most the documents' rows. */
  sizes: readonly number[];
  /** First-stage code lengths (the first `bits` dimensions' sign bits), multiples of 8. */
  bits: readonly number[];
  stages: readonly FirstStageType[];
  /** Rescore multipliers m: the first stage keeps top_k × m candidates (top_k = 10). */
  multipliers: readonly number[];
  /** Code transforms measured beside first dims (src/transform/), each made for one size and code length. */
  transforms?: readonly TransformSource[];
}

/**
 * A code transform for the documents [0, size) at one code length: a seeded rotation (the same
 * for every size) or one fitted on those documents' int8 codes (rows of `int8`, as a collection
 * stores them). Codes are then recomputed from the int8 codes, as the service recomputes them.
 */
export interface TransformSource {
  name: string;
  make(size: number, bits: number, int8: Int8Array): CodeTransform;
}

/** A row of a transform beside first dims, and how long making it took. */
export interface TransformRow extends RecallRow {
  transform: string;
  makeSeconds: number;
}

/** Means over the queries for one subset size, code length, first stage and multiplier. */
export interface RecallRow {
  documents: number;
  bits: number;
  stage: FirstStageType;
  multiplier: number;
  /** The share of the exact top-10 among the first stage's top_k × m candidates. */
  firstStage: Recalls;
  /** |exact top-10 ∩ top-10 after int8 rescoring of those candidates| / 10. */
  endToEnd: Recalls;
}

/** How close the exact float32 neighbours are at one size: mean scores (cosines) over the queries. */
export interface Neighbours {
  documents: number;
  first: number;
  tenth: number;
}

export interface RecallMeasurement {
  rows: RecallRow[];
  /** The same for each of settings.transforms (rows holds first dims). */
  transformRows: TransformRow[];
  /** Per size: what the first stage must separate, the exact neighbours' scores. */
  neighbours: Neighbours[];
  queries: number;
  /** Seconds each part took. */
  seconds: { codes: number; exact: Recalls; firstStage: number };
}

/** The part of a corpus measured: documents and queries as row-major float32, and the bundle's quantizer. */
export interface RecallInput {
  documents: Float32Array;
  queries: Float32Array;
  quantizer: Quantizer;
}

/** A permutation of [0, n) fixed by `seed` (Fisher–Yates over xorshift32): its prefixes are the nested subsets. */
export function seededPermutation(n: number, seed: number): Uint32Array {
  const next = xorshift32(seed);
  const order = Uint32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = next() % (i + 1);
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}

/** Rows `rows` of a row-major matrix of `dimension` columns, in that order, as a new matrix. */
export function takeRows(matrix: Float32Array, dimension: number, rows: ArrayLike<number>): Float32Array {
  const out = new Float32Array(rows.length * dimension);
  for (let r = 0; r < rows.length; r++) out.set(matrix.subarray(rows[r]! * dimension, (rows[r]! + 1) * dimension), r * dimension);
  return out;
}

/** Where each of `exact` (best first) sits in the first stage's `order`; NOT_FOUND when absent (as src/quality/measure.ts records). */
export function positionsIn(order: readonly number[], exact: readonly number[]): Uint16Array {
  const at = new Map<number, number>();
  order.forEach((row, i) => at.set(row, i));
  return Uint16Array.from(exact, (row) => at.get(row) ?? NOT_FOUND);
}

/** The share of `positions` below `depth`: the exact top-10 kept among that many candidates. */
export function keptShare(positions: Uint16Array, depth: number): number {
  let kept = 0;
  for (const p of positions) if (p < depth) kept++;
  return positions.length === 0 ? 1 : kept / positions.length;
}

/**
 * The best `k` of the first `count` candidates by int8 score, then first-stage distance, then
 * row: the order src/search/query.ts rescores in.
 */
export function rescoredTop(rows: readonly number[], distances: readonly number[], scores: ArrayLike<number>, count: number, k: number): number[] {
  const order = Array.from({ length: Math.min(count, rows.length) }, (_, i) => i);
  order.sort((a, b) => scores[b]! - scores[a]! || distances[a]! - distances[b]! || rows[a]! - rows[b]!);
  return order.slice(0, k).map((i) => rows[i]!);
}

/** |found ∩ exact| / |exact|. */
export function overlap(found: readonly number[], exact: readonly number[]): number {
  if (exact.length === 0) return 1;
  const set = new Set(found);
  let hits = 0;
  for (const row of exact) if (set.has(row)) hits++;
  return hits / exact.length;
}

/** Rows [0, size) of `codes` (`codeBytes` each) cut to their first `bytes` bytes, back to back. */
function prefixCodes(codes: Uint8Array, codeBytes: number, bytes: number, size: number): Uint8Array {
  if (bytes === codeBytes) return codes.subarray(0, size * codeBytes);
  const out = new Uint8Array(size * bytes);
  for (let r = 0; r < size; r++) out.set(codes.subarray(r * codeBytes, r * codeBytes + bytes), r * bytes);
  return out;
}

const seconds = (t0: number) => (performance.now() - t0) / 1000;

/** Measures every (size, bits, stage, multiplier) of `settings`; `log` gets progress lines. */
export function measureRecall(input: RecallInput, settings: RecallSettings, log: (line: string) => void = () => {}): RecallMeasurement {
  const { documents, queries, quantizer } = input;
  const dim = quantizer.dimension;
  const rows = documents.length / dim;
  const count = queries.length / dim;
  const { sizes, bits, stages, multipliers } = settings;
  const depth = RECALL_AT * Math.max(...multipliers);
  if (Math.max(...multipliers) > MULTIPLIER_MAX || Math.min(...multipliers) < 1) throw new Error(`multipliers must be 1 to ${MULTIPLIER_MAX}`);
  for (const b of bits) if (b % 8 !== 0 || b < 8 || b > dim) throw new Error(`code length ${b}: a multiple of 8 up to ${dim}`);

  // The documents' codes, as the store keeps them: int8 for rescoring, packed signs for the first stage.
  let t0 = performance.now();
  const codeBytes = dim / 8;
  const int8 = new Int8Array(rows * dim);
  const signs = new Uint8Array(rows * codeBytes);
  for (let r = 0; r < rows; r++) {
    const vector = documents.subarray(r * dim, (r + 1) * dim);
    quantizer.toInt8(vector, int8.subarray(r * dim, (r + 1) * dim));
    quantizer.toUbinary(vector, signs.subarray(r * codeBytes, (r + 1) * codeBytes));
  }
  const vectors = Array.from({ length: count }, (_, q) => queries.subarray(q * dim, (q + 1) * dim));
  const folded: FoldedQuery[] = vectors.map((v) => foldQuery(v, quantizer));
  const foldedWeights = new Float32Array(count * dim);
  folded.forEach((f, q) => foldedWeights.set(f.weights, q * dim));
  const codesSeconds = seconds(t0);

  const exactSeconds = { float32: 0, int8: 0 };
  const exact = {} as Record<Reference, ExactTop[][]>;
  const scanned = sizes.at(-1)!;
  for (const reference of REFERENCES) {
    t0 = performance.now();
    let logged = 0;
    const progress = (done: number) => {
      if (done < scanned && done - logged < scanned / 10) return;
      logged = done;
      const s = seconds(t0);
      log(`exact ${reference}: ${done.toLocaleString('en')} / ${scanned.toLocaleString('en')} documents, ${s.toFixed(0)} s, about ${((s * (scanned - done)) / done).toFixed(0)} s left`);
    };
    exact[reference] =
      reference === 'float32'
        ? exactTopK(documents, dim, { weights: queries }, sizes, RECALL_AT, progress)
        : exactTopK(int8, dim, { weights: foldedWeights, bias: Float64Array.from(folded, (f) => f.bias) }, sizes, RECALL_AT, progress);
    exactSeconds[reference] = seconds(t0);
  }

  /** Sums over the queries of every stage and multiplier, for codes of the documents [0, size). */
  const pool = createScanPool(1); // one thread: the bench measures what the first stage returns, which splitting does not change
  const scores = new Float64Array(depth);
  const mean = (r: Recalls): Recalls => ({ float32: r.float32 / count, int8: r.int8 / count });
  function measureCodes(s: number, codeBits: number, codes: Uint8Array, transform?: CodeTransform): RecallRow[] {
    const size = sizes[s]!;
    const sums = stages.map(() => multipliers.map(() => ({ firstStage: { float32: 0, int8: 0 }, endToEnd: { float32: 0, int8: 0 } })));
    const index = createBinaryIndex(codeBits / 8, 0, [], { rowids: Uint32Array.from({ length: size }, (_, r) => r), codes }, { pool });
    for (let q = 0; q < count; q++) {
      for (const [t, stage] of stages.entries()) {
        const first = index.search(encodeQuery(stage, vectors[q]!, codeBits, quantizer, transform), depth);
        for (let i = 0; i < first.rowids.length; i++) scores[i] = scoreInt8(folded[q]!, int8, first.rowids[i]! * dim);
        const positions = REFERENCES.map((reference) => positionsIn(first.rowids, exact[reference][s]![q]!.rows));
        for (const [i, m] of multipliers.entries()) {
          const sum = sums[t]![i]!;
          const rescored = rescoredTop(first.rowids, first.distances, scores, RECALL_AT * m, RECALL_AT);
          for (const [r, reference] of REFERENCES.entries()) {
            sum.firstStage[reference] += keptShare(positions[r]!, RECALL_AT * m);
            sum.endToEnd[reference] += overlap(rescored, exact[reference][s]![q]!.rows);
          }
        }
      }
    }
    index.release();
    return stages.flatMap((stage, t) => multipliers.map((multiplier, i) => ({ documents: size, bits: codeBits, stage, multiplier, firstStage: mean(sums[t]![i]!.firstStage), endToEnd: mean(sums[t]![i]!.endToEnd) })));
  }

  t0 = performance.now();
  const out: RecallRow[] = [];
  for (const codeBits of bits) {
    for (const [s, size] of sizes.entries()) {
      const started = performance.now();
      out.push(...measureCodes(s, codeBits, prefixCodes(signs, codeBytes, codeBits / 8, size)));
      log(`first stage ${codeBits} bits, ${size.toLocaleString('en')} documents: ${count} queries × ${stages.join(' + ')} in ${seconds(started).toFixed(1)} s`);
    }
  }
  // The table's order: size, then bits, stage, multiplier.
  const order = (r: RecallRow) => [sizes.indexOf(r.documents), bits.indexOf(r.bits), stages.indexOf(r.stage), multipliers.indexOf(r.multiplier)];
  const byOrder = (a: RecallRow, b: RecallRow) => {
    const x = order(a);
    const y = order(b);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
    return 0;
  };
  out.sort(byOrder);
  const firstStageSeconds = seconds(t0);

  const transformRows: TransformRow[] = [];
  for (const source of settings.transforms ?? []) {
    for (const codeBits of bits) {
      for (const [s, size] of sizes.entries()) {
        const started = performance.now();
        const transform = source.make(size, codeBits, int8.subarray(0, size * dim));
        const codes = new Uint8Array(size * (codeBits / 8));
        int8Coder(transform, quantizer).encode(int8, size, codes);
        const makeSeconds = seconds(started);
        transformRows.push(...measureCodes(s, codeBits, codes, transform).map((r) => ({ ...r, transform: source.name, makeSeconds })));
        log(`${source.name} ${codeBits} bits, ${size.toLocaleString('en')} documents: made in ${makeSeconds.toFixed(1)} s, measured in ${(seconds(started) - makeSeconds).toFixed(1)} s`);
      }
    }
  }
  void pool.close();

  const meanScore = (tops: ExactTop[], rank: number) => tops.reduce((sum, top) => sum + (top.scores[rank] ?? top.scores.at(-1)!), 0) / count;
  const neighbours = sizes.map((documents, s) => ({ documents, first: meanScore(exact.float32[s]!, 0), tenth: meanScore(exact.float32[s]!, RECALL_AT - 1) }));
  return { rows: out, transformRows, neighbours, queries: count, seconds: { codes: codesSeconds, exact: exactSeconds, firstStage: firstStageSeconds } };
}
