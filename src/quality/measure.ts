/**
 * Measuring queries on a collection: the exact int8 top-10 of each (a full scan, exact.ts), then
 * where each of those documents sits in the order every first stage returns (the served code:
 * first-stage/ with k = MEASURED_DEPTH, ties in its order). No labels: the reference is the
 * ranking the int8 codes themselves give.
 *
 * The scan reads a page at a time through `pace`, which runs each slice of work and then waits
 * (monitor.ts bounds the CPU share this way), so writes and searches go on meanwhile. Documents
 * written after the scan passed them are left out of the first stage's order too (their rowids
 * are past the last one scanned), so both sides rank the same documents; a document deleted
 * meanwhile counts as not found (rare, and only lowers the figure). A collection switched to
 * other codes or deleted during the measurement yields nothing.
 */
import { encodeQuery, FIRST_STAGE_TYPES, type FirstStageQuery, type FirstStageType } from '../first-stage/query.js';
import type { FirstStageIndex } from '../first-stage/first-stage.js';
import { foldQuery } from '../quantization/dequantize.js';
import type { Quantizer } from '../quantization/quantize.js';
import { type CollectionRow, codeBitsOf, type FirstStageResult, type Store } from '../store/store.js';
import type { CodeTransform } from '../transform/transform.js';
import { MEASURED_DEPTH, NOT_FOUND, RECALL_AT } from './estimate.js';
import { PAGE_ROWS, scanQueries, scorePage, TopK } from './exact.js';

/** One query measured on a collection in one state. */
export interface QueryMeasurement {
  /** Per first stage, the positions of the exact top-10 (best first) in its order; NOT_FOUND past MEASURED_DEPTH. */
  positions: Record<FirstStageType, Uint16Array>;
  /** The collection when measured: its codes (codesKey: the model, and the transform if any), its size, its generation, and when (epoch ms). */
  fingerprint: string;
  documents: number;
  generation: number;
  at: number;
}

export interface MeasuredQuery {
  vector: Float32Array;
  /** A document serving as a query: it is left out of its own rankings. */
  self?: number;
}

export interface MeasureTarget {
  store: Pick<Store, 'int8CodePage' | 'getCollectionById'>;
  firstStage: Pick<FirstStageIndex, 'nearest'>;
  collection: CollectionRow;
  quantizer: Quantizer;
  /** The collection's served codes: codesKey(collection), and its transform (none: first dims). */
  codes: string;
  transform?: CodeTransform;
}

/**
 * What names a collection's served first-stage codes: its model's fingerprint, and the
 * transform's after a `+` (none under first dims, so that measurements taken before transforms
 * existed still count).
 */
export const codesKey = (c: Pick<CollectionRow, 'fingerprint' | 'transform'>): string => (c.transform ? `${c.fingerprint}+${c.transform}` : c.fingerprint);

/** Runs one slice of work now, then lets the caller's share of time pass; throws to stop. */
export type Pace = <T>(work: () => T) => Promise<T>;

/** Runs every slice at once: a measurement asked for in the foreground (`qembed quality --measure`, tests). */
export const unpaced: Pace = async (work) => work();

/** Documents scanned so far by a measurement running now (its progress). */
export type OnScanned = (documents: number) => void;

/**
 * The codes a measurement ranks against: the collection's served first stage, or codes staged
 * for a transform switch (their candidate). `key` names them (a measurement is of those codes).
 */
export interface MeasuredCodes {
  key: string;
  nearest(query: FirstStageQuery, k: number): FirstStageResult;
  transform?: CodeTransform;
}

/** The served codes of `target`'s collection. */
export const servedCodes = (target: MeasureTarget): MeasuredCodes => ({
  key: target.codes,
  nearest: (q, k) => target.firstStage.nearest(target.collection.id, q, k),
  ...(target.transform && { transform: target.transform }),
});

export async function measureQueries(target: MeasureTarget, queries: readonly MeasuredQuery[], pace: Pace, onScanned?: OnScanned): Promise<QueryMeasurement[]> {
  const [served] = await measureCodes(target, queries, [servedCodes(target)], pace, onScanned);
  return served ?? [];
}

/**
 * Each query's exact top-10 (one scan for all of them), then its positions in the order of each
 * of `codes`: one list of measurements per entry, or none when the collection was deleted or
 * switched to other codes (model or transform) meanwhile.
 */
export async function measureCodes(
  target: MeasureTarget,
  queries: readonly MeasuredQuery[],
  codes: readonly MeasuredCodes[],
  pace: Pace,
  onScanned?: OnScanned,
): Promise<QueryMeasurement[][]> {
  const { store, collection: c, quantizer } = target;
  if (queries.length === 0) return codes.map(() => []);
  const folded = scanQueries(queries.map((q) => foldQuery(q.vector, quantizer)));
  const tops = queries.map(() => new TopK(RECALL_AT));
  const selves = queries.map((q) => q.self);
  let last = 0;
  let scanned = 0;
  for (;;) {
    const after = last;
    const read = await pace(() => {
      const page = store.int8CodePage(c.id, after, PAGE_ROWS);
      scorePage(page, folded, tops, selves);
      return page.rowids.length === 0 ? undefined : { last: page.rowids[page.rowids.length - 1]!, rows: page.rowids.length };
    });
    if (read === undefined) break;
    last = read.last;
    scanned += read.rows;
    onScanned?.(scanned);
  }

  const bits = codeBitsOf(c);
  const measured: QueryMeasurement[][] = codes.map(() => []);
  for (const [i, q] of queries.entries()) {
    const done = await pace(() => {
      const now = store.getCollectionById(c.id);
      if (!now || codesKey(now) !== target.codes) return false;
      const exact = tops[i]!.rowids;
      const wanted = new Map(exact.map((rowid, j) => [rowid, j]));
      for (const [n, under] of codes.entries()) {
        const out = {} as Record<FirstStageType, Uint16Array>;
        for (const type of FIRST_STAGE_TYPES) {
          const first = under.nearest(encodeQuery(type, q.vector, bits, quantizer, under.transform), MEASURED_DEPTH + (q.self === undefined ? 0 : 1));
          const positions = new Uint16Array(exact.length).fill(NOT_FOUND);
          let at = 0;
          for (const rowid of first.rowids) {
            if (rowid === q.self || rowid > last) continue;
            if (at === MEASURED_DEPTH) break;
            const j = wanted.get(rowid);
            if (j !== undefined) positions[j] = at;
            at++;
          }
          out[type] = positions;
        }
        measured[n]!.push({ positions: out, fingerprint: under.key, documents: now.document_count, generation: now.generation, at: Date.now() });
      }
      return true;
    });
    if (!done) return codes.map(() => []);
  }
  return measured;
}
