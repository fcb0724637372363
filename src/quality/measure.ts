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
import { encodeQuery, FIRST_STAGE_TYPES, type FirstStageType } from '../first-stage/query.js';
import type { FirstStageIndex } from '../first-stage/first-stage.js';
import { foldQuery } from '../quantization/dequantize.js';
import type { Quantizer } from '../quantization/quantize.js';
import { type CollectionRow, codeBitsOf, type Store } from '../store/store.js';
import { MEASURED_DEPTH, NOT_FOUND, RECALL_AT } from './estimate.js';
import { PAGE_ROWS, scanQueries, scorePage, TopK } from './exact.js';

/** One query measured on a collection in one state. */
export interface QueryMeasurement {
  /** Per first stage, the positions of the exact top-10 (best first) in its order; NOT_FOUND past MEASURED_DEPTH. */
  positions: Record<FirstStageType, Uint16Array>;
  /** The collection when measured: its codes' model, its size, its generation, and when (epoch ms). */
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
}

/** Runs one slice of work now, then lets the caller's share of time pass; throws to stop. */
export type Pace = <T>(work: () => T) => Promise<T>;

/** Runs every slice at once: a measurement asked for in the foreground (`qembed quality --measure`, tests). */
export const unpaced: Pace = async (work) => work();

/** Documents scanned so far by a measurement running now (its progress). */
export type OnScanned = (documents: number) => void;

export async function measureQueries(target: MeasureTarget, queries: readonly MeasuredQuery[], pace: Pace, onScanned?: OnScanned): Promise<QueryMeasurement[]> {
  const { store, firstStage, collection: c, quantizer } = target;
  if (queries.length === 0) return [];
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
  const measured: QueryMeasurement[] = [];
  for (const [i, q] of queries.entries()) {
    const positions = await pace(() => {
      const now = store.getCollectionById(c.id);
      if (!now || now.fingerprint !== c.fingerprint) return undefined;
      const out = {} as Record<FirstStageType, Uint16Array>;
      const exact = tops[i]!.rowids;
      const wanted = new Map(exact.map((rowid, j) => [rowid, j]));
      for (const type of FIRST_STAGE_TYPES) {
        const first = firstStage.nearest(c.id, encodeQuery(type, q.vector, bits, quantizer), MEASURED_DEPTH + (q.self === undefined ? 0 : 1));
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
      return { positions: out, documents: now.document_count, generation: now.generation };
    });
    if (!positions) return [];
    measured.push({ ...positions, fingerprint: c.fingerprint, at: Date.now() });
  }
  return measured;
}
