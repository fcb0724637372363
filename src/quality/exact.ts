/**
 * The exact int8 ranking: every document of a collection scored with the folded int8 score that
 * rescoring uses (quantization/dequantize.ts), the best k kept. It is the reference the recall
 * measurement compares the first stage with (measure.ts), and what `rescore: "exact"` answers.
 * Codes are read a page at a time (store.int8CodePage), so a scan can pause between pages.
 */
import type { FoldedQuery } from '../quantization/dequantize.js';
import type { Store } from '../store/store.js';
import { BLOCK, GROUP, scoreBlock, scoreOne } from '../quantization/linear-scan.js';

/** Rows read per page of a scan. */
export const PAGE_ROWS = 1024;

/** The best k (score descending, then rowid ascending: a stable order) of what it is offered. */
export class TopK {
  readonly rowids: number[] = [];
  readonly scores: number[] = [];
  constructor(readonly k: number) {}

  offer(rowid: number, score: number): void {
    const { rowids, scores, k } = this;
    const n = scores.length;
    if (n === k) {
      const last = scores[n - 1]!;
      // Rowids arrive in ascending order within a scan, so an equal score never displaces.
      if (score < last || (score === last && rowid > rowids[n - 1]!)) return;
    }
    let i = n;
    while (i > 0 && (scores[i - 1]! < score || (scores[i - 1] === score && rowids[i - 1]! > rowid))) i--;
    scores.splice(i, 0, score);
    rowids.splice(i, 0, rowid);
    if (scores.length > k) {
      scores.pop();
      rowids.pop();
    }
  }
}

/** An int8 code as the signed view it is (the store hands Buffers). */
export const int8View = (b: Uint8Array): Int8Array => new Int8Array(b.buffer, b.byteOffset, b.byteLength);

/** Queries folded once for a scan: their weights as rows of one matrix (padded to whole groups), their biases. */
export interface ScanQueries {
  readonly weights: Float32Array;
  readonly bias: readonly number[];
  readonly dimension: number;
}

export function scanQueries(queries: readonly FoldedQuery[]): ScanQueries {
  const dimension = queries[0]?.weights.length ?? 0;
  const weights = new Float32Array(Math.ceil(queries.length / GROUP) * GROUP * dimension);
  queries.forEach((q, i) => weights.set(q.weights, i * dimension));
  return { weights, bias: queries.map((q) => q.bias), dimension };
}

/**
 * Scores one page of codes against every query (linear-scan.ts: the same sums as scoreInt8, a
 * block at a time), offering each (rowid, score) to its TopK; `skip[q]` is a rowid query q leaves
 * out (itself).
 */
export function scorePage(page: { rowids: readonly number[]; codes: readonly Uint8Array[] }, queries: ScanQueries, tops: readonly TopK[], skip?: readonly (number | undefined)[]): void {
  const { dimension, bias } = queries;
  const n = page.rowids.length;
  const codes = new Int8Array(n * dimension);
  for (let d = 0; d < n; d++) codes.set(int8View(page.codes[d]!), d * dimension);
  const scores = new Float64Array(GROUP * BLOCK);
  if (bias.length === 1) {
    // One query (`rescore: "exact"`): its own loop, not a group padded with three empty rows.
    const top = tops[0]!;
    const self = skip?.[0];
    for (let start = 0; start < n; start += BLOCK) {
      const end = Math.min(n, start + BLOCK);
      scoreOne(queries.weights, dimension, codes, start, end, scores);
      for (let d = start; d < end; d++) {
        const rowid = page.rowids[d]!;
        if (rowid !== self) top.offer(rowid, bias[0]! + scores[d - start]!);
      }
    }
    return;
  }
  for (let start = 0; start < n; start += BLOCK) {
    const end = Math.min(n, start + BLOCK);
    for (let q = 0; q < bias.length; q += GROUP) {
      scoreBlock(queries.weights, q, dimension, codes, start, end, scores);
      for (let t = 0; t < GROUP && q + t < bias.length; t++) {
        const top = tops[q + t]!;
        const self = skip?.[q + t];
        for (let d = start; d < end; d++) {
          const rowid = page.rowids[d]!;
          if (rowid !== self) top.offer(rowid, bias[q + t]! + scores[t * BLOCK + d - start]!);
        }
      }
    }
  }
}

/**
 * The exact top k of one query over the collection, or over `rowids` (a filter's matches), in
 * one synchronous pass: `rescore: "exact"`, bounded by the caller (QEMBED_EXACT_MAX_DOCUMENTS).
 */
export function exactTopK(store: Pick<Store, 'int8CodePage' | 'int8Codes'>, collectionId: number, query: FoldedQuery, k: number, rowids?: readonly number[]): TopK {
  const top = new TopK(k);
  const queries = scanQueries([query]);
  if (rowids) {
    for (let i = 0; i < rowids.length; i += PAGE_ROWS) {
      const ids = rowids.slice(i, i + PAGE_ROWS);
      const codes = store.int8Codes(ids);
      const present = ids.flatMap((rowid, j) => (codes[j] ? [{ rowid, code: codes[j] }] : []));
      scorePage({ rowids: present.map((p) => p.rowid), codes: present.map((p) => p.code) }, queries, [top]);
    }
    return top;
  }
  for (let after = 0; ; ) {
    const page = store.int8CodePage(collectionId, after, PAGE_ROWS);
    if (page.rowids.length === 0) return top;
    scorePage(page, queries, [top]);
    after = page.rowids[page.rowids.length - 1]!;
  }
}
