/**
 * The exact int8 ranking: every document of a collection scored with the folded int8 score that
 * rescoring uses (quantization/dequantize.ts), the best k kept. It is the reference the recall
 * measurement compares the first stage with (measure.ts), and what `rescore: "exact"` answers.
 * Codes are read a page at a time (store.int8CodePage), so a scan can pause between pages.
 */
import { type FoldedQuery, scoreInt8 } from '../quantization/dequantize.js';
import type { Store } from '../store/store.js';

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

/** Scores one page of codes against every query, offering each (rowid, score) to its TopK; `skip[q]` is a rowid query q leaves out (itself). */
export function scorePage(page: { rowids: readonly number[]; codes: readonly Uint8Array[] }, queries: readonly FoldedQuery[], tops: readonly TopK[], skip?: readonly (number | undefined)[]): void {
  for (let d = 0; d < page.rowids.length; d++) {
    const rowid = page.rowids[d]!;
    const code = int8View(page.codes[d]!);
    for (let q = 0; q < queries.length; q++) {
      if (skip?.[q] === rowid) continue;
      tops[q]!.offer(rowid, scoreInt8(queries[q]!, code));
    }
  }
}

/**
 * The exact top k of one query over the collection, or over `rowids` (a filter's matches), in
 * one synchronous pass: `rescore: "exact"`, bounded by the caller (QEMBED_EXACT_MAX_DOCUMENTS).
 */
export function exactTopK(store: Pick<Store, 'int8CodePage' | 'int8Codes'>, collectionId: number, query: FoldedQuery, k: number, rowids?: readonly number[]): TopK {
  const top = new TopK(k);
  if (rowids) {
    for (let i = 0; i < rowids.length; i += PAGE_ROWS) {
      const ids = rowids.slice(i, i + PAGE_ROWS);
      const codes = store.int8Codes(ids);
      const present = ids.flatMap((rowid, j) => (codes[j] ? [{ rowid, code: codes[j] }] : []));
      scorePage({ rowids: present.map((p) => p.rowid), codes: present.map((p) => p.code) }, [query], [top]);
    }
    return top;
  }
  for (let after = 0; ; ) {
    const page = store.int8CodePage(collectionId, after, PAGE_ROWS);
    if (page.rowids.length === 0) return top;
    scorePage(page, [query], [top]);
    after = page.rowids[page.rowids.length - 1]!;
  }
}
