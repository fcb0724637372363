/**
 * Documents standing in for queries while a collection has served too few: drawn at random
 * from its rows, their vectors the centres of their int8 buckets (float32 vectors are never
 * stored). A document is nearer its own neighbours than a typical query is, so this is the
 * first estimate, replaced as soon as enough real queries are measured; answers say which.
 */
import { dequantizeInt8 } from '../quantization/dequantize.js';
import type { Quantizer } from '../quantization/quantize.js';
import { MAX_ROWID, type Store } from '../store/store.js';
import { int8View } from './exact.js';
import type { SampledQuery } from './sample.js';

type Rows = Pick<Store, 'int8CodePage'>;

/** The collection's last rowid (0 when empty): the smallest x with no row after it, by bisection (about 32 one-row reads). */
function lastRowid(store: Rows, collectionId: number): number {
  let lo = 0;
  let hi = MAX_ROWID;
  if (store.int8CodePage(collectionId, 0, 1).rowids.length === 0) return 0;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (store.int8CodePage(collectionId, mid, 1).rowids.length > 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Up to `count` distinct documents of the collection, none of `taken`, as queries. */
export function drawDocuments(store: Rows, collectionId: number, count: number, quantizer: Quantizer, taken: ReadonlySet<number>, random: () => number = Math.random): SampledQuery[] {
  const first = store.int8CodePage(collectionId, 0, 1).rowids[0];
  if (first === undefined || count <= 0) return [];
  const last = lastRowid(store, collectionId);
  const drawn = new Map<number, Uint8Array>();
  // Rowids have gaps (deletions, other collections' rows): the row after a uniform draw. Twice
  // as many draws as wanted, so that a small collection ends with what it has.
  for (let attempt = 0; attempt < 2 * count && drawn.size < count; attempt++) {
    const after = first - 1 + Math.floor(random() * (last - first + 1));
    const page = store.int8CodePage(collectionId, after, 1);
    const rowid = page.rowids[0];
    if (rowid !== undefined && !taken.has(rowid) && !drawn.has(rowid)) drawn.set(rowid, page.codes[0]!);
  }
  // A small collection runs out of fresh rows to hit at random: walk on from a random place (wrapping once) for the rest.
  const start = first - 1 + Math.floor(random() * (last - first + 1));
  for (const [from, to] of [[start, last], [first - 1, start]] as const) {
    for (let after = from; drawn.size < count && after < to; ) {
      const page = store.int8CodePage(collectionId, after, count);
      if (page.rowids.length === 0) break;
      for (const [i, rowid] of page.rowids.entries()) {
        if (rowid > to || drawn.size >= count) break;
        if (!taken.has(rowid) && !drawn.has(rowid)) drawn.set(rowid, page.codes[i]!);
      }
      after = page.rowids[page.rowids.length - 1]!;
    }
  }
  return [...drawn].map(([rowid, code]) => ({ vector: dequantizeInt8(int8View(code), quantizer), self: rowid }));
}
