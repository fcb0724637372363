// @ts-check
/**
 * The selection half of the first stage, shared by the thread that searches (binary-index.ts)
 * and the scan threads (scan-thread.mjs): the kernel appends (slot, distance) pairs at or under
 * a threshold, and `prunePairs` keeps the best ones and tightens the threshold, so that after
 * the first few thousand documents almost nothing is appended.
 *
 * Plain JavaScript (type-checked through JSDoc) because worker threads do not inherit the
 * TypeScript loader that tests and `npm run dev` use; the same file runs from src/ and dist/.
 */

/** @typedef {(start: number, end: number, queryPtr: number, thr: number, outPtr: number, cap: number) => number} ScanFunction */

/**
 * Keeps the best `keep` live pairs of `pairs[0..n)` (slot, distance), in slot order; returns
 * how many remain and the largest distance still worth collecting. Ties at the cut keep the
 * lowest slots, and since later slots are higher, later ties can never enter: hence `v - 1`.
 *
 * @param {Uint32Array} pairs (slot, distance) pairs in ascending slot order
 * @param {number} n pairs in use
 * @param {number} keep
 * @param {number} maxDistance the largest distance the kernel can return
 * @param {Uint8Array | null} tomb tombstone bits by slot, or null when no slot is dead
 * @returns {{ n: number, thr: number }}
 */
export function prunePairs(pairs, n, keep, maxDistance, tomb) {
  const hist = new Uint32Array(maxDistance + 1);
  let live = 0;
  for (let i = 0; i < n; i++) {
    const slot = /** @type {number} */ (pairs[2 * i]);
    if (tomb && (/** @type {number} */ (tomb[slot >> 3]) & (1 << (slot & 7))) !== 0) {
      pairs[2 * i + 1] = 0xffffffff;
      continue;
    }
    const d = /** @type {number} */ (pairs[2 * i + 1]);
    hist[d] = /** @type {number} */ (hist[d]) + 1;
    live++;
  }
  let m = 0;
  if (live <= keep) {
    for (let i = 0; i < n; i++) {
      if (pairs[2 * i + 1] === 0xffffffff) continue;
      pairs[2 * m] = /** @type {number} */ (pairs[2 * i]);
      pairs[2 * m + 1] = /** @type {number} */ (pairs[2 * i + 1]);
      m++;
    }
    return { n: m, thr: maxDistance };
  }
  let acc = 0;
  let v = 0;
  for (; v <= maxDistance; v++) {
    acc += /** @type {number} */ (hist[v]);
    if (acc >= keep) break;
  }
  let ties = keep - (acc - /** @type {number} */ (hist[v]));
  for (let i = 0; i < n; i++) {
    const d = /** @type {number} */ (pairs[2 * i + 1]);
    if (d < v || (d === v && ties-- > 0)) {
      pairs[2 * m] = /** @type {number} */ (pairs[2 * i]);
      pairs[2 * m + 1] = d;
      m++;
    }
  }
  return { n: m, thr: v - 1 };
}

/**
 * The best `keep` live documents of slots [start, end), as (slot, distance) pairs in slot order
 * at the start of `pairs` (a view of `cap` pairs at address `outPtr` of the kernel's memory);
 * returns how many. Exact: the same as sorting every live slot by (distance, slot).
 *
 * @param {ScanFunction} scan the kernel's scan (Hamming or asymmetric)
 * @param {() => number} written pairs appended by the kernel's last call
 * @param {{ start: number, end: number, queryPtr: number, outPtr: number, pairs: Uint32Array, cap: number, keep: number, maxDistance: number, tomb: Uint8Array | null }} job
 * @returns {number}
 */
export function scanSlots(scan, written, job) {
  const state = { have: 0, thr: job.maxDistance };
  collect(scan, written, job, state);
  return prunePairs(job.pairs, state.have, job.keep, job.maxDistance, job.tomb).n;
}

/**
 * Scans positions [start, end) with `scan`, appending to the pairs `state.have` already holds
 * and pruning them to the best `keep` (lowering `state.thr`) whenever the area fills: a search
 * over several ranges (a filter's list, chunk by chunk) carries `state` from one to the next.
 * The pairs are not pruned at the end: the caller does it once all ranges are scanned.
 *
 * @param {ScanFunction} scan
 * @param {() => number} written
 * @param {{ start: number, end: number, queryPtr: number, outPtr: number, pairs: Uint32Array, cap: number, keep: number, maxDistance: number, tomb: Uint8Array | null }} job
 * @param {{ have: number, thr: number }} state
 */
export function collect(scan, written, job, state) {
  const { start, end, queryPtr, outPtr, pairs, cap, keep, maxDistance, tomb } = job;
  let i = start;
  while (i < end && state.thr >= 0) {
    i = scan(i, end, queryPtr, state.thr, outPtr + state.have * 8, cap - state.have);
    state.have += written();
    if (state.have === cap) ({ n: state.have, thr: state.thr } = prunePairs(pairs, state.have, keep, maxDistance, tomb));
  }
}
