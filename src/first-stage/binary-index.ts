/**
 * The in-memory first-stage index of one collection: the packed binary codes of its
 * documents back to back in one WebAssembly memory (the kernel scans them in place), and a
 * Uint32Array of their store rowids in the same order. Rowids only grow (AUTOINCREMENT), so
 * new documents append and the rowid array stays sorted: rowid → slot is a binary search, and
 * an upsert of an existing document overwrites its code in its slot. Deletes set a tombstone
 * bit; compaction squeezes them out once they are more than 1/16 of the slots. No
 * per-document JavaScript object exists anywhere.
 *
 * Memory: codes N·dim/8 bytes + rowids 4·N + tombstones N/8 bits, sized exactly when loaded
 * (1.09 × N·dim/8 at 384 dimensions), then grown by 1/32 (codes: WebAssembly memory grows in
 * place, nothing is copied) or 1/16 (rowids), plus a scratch area for one search's
 * candidates; with tombstones at the compaction threshold, at most about 1.19 × N·dim/8.
 *
 * Search is exact: the top k (Hamming distance, then slot order for ties) over all live
 * documents, or over a sorted list of rowids (a metadata filter's matches).
 */
import { errors } from '../errors.js';
import type { CodeEntry, FirstStageResult } from '../store/store.js';
import { createHammingKernel, hammingModule, type HammingKernel } from './hamming-kernel.js';
import { type FirstStageQuery, kernelInput } from './query.js';
import { scanPool, type ScanPool, type ScanTarget } from './scan-pool.js';
import { collect, prunePairs, scanSlots } from './scan-range.mjs';

const PAGE = 65536;
/** Slots of a filter's rowid list passed to the kernel at a time. */
const LIST_CHUNK = 4096;
/** Memory a WebAssembly (wasm32) memory can reach. */
const MAX_MEMORY = 65536 * PAGE;
/** Fewest slots worth a scan thread: below, waking one costs more than it saves. */
const MIN_PART_SLOTS = 131_072;
let nextId = 1;

export interface BinaryIndexOptions {
  /** The scan threads (default: the process's, scan-pool.ts). */
  pool?: ScanPool;
  /** Fewest slots per thread before a scan is split (tests lower it). */
  minPartSlots?: number;
}

export interface BinaryIndex {
  readonly codeBytes: number;
  /** Live documents. */
  size(): number;
  /** Slots in use, tombstones included. */
  slots(): number;
  tombstones(): number;
  /** Bytes the index holds: the WebAssembly memory (codes + scratch), rowids and tombstones. */
  memoryBytes(): number;
  /** Makes room for `additional` appended documents, so that applying a committed batch cannot fail. */
  reserve(additional: number): void;
  /** Overwrites the code of `rowid` in place, or appends it (rowid above every stored one). */
  upsert(rowid: number, code: Uint8Array): void;
  /** Tombstones `rowid`; false if it is not in the index. Compacts when tombstones pile up. */
  remove(rowid: number): boolean;
  /** Squeezes tombstones out now (and gives back memory when much of it is unused). */
  compact(): void;
  /**
   * Exact top-k by the query's distance (Hamming, or asymmetric: query.ts), over every live
   * document or over `rowids` (ascending). The query must be of this index's code length.
   */
  search(query: FirstStageQuery, k: number, rowids?: readonly number[]): FirstStageResult;
  /** Live entries in rowid order; `code` is a copy. */
  entries(): IterableIterator<CodeEntry>;
  /** The live rowids and their codes back to back (tombstones squeezed out first): views, valid until the next change. */
  packed(): { rowids: Uint32Array; codes: Uint8Array };
  /** Tells the scan threads to let go of this index (it is no longer used). */
  release(): void;
  /** Whether `rowid` is a live document of the index. */
  has(rowid: number): boolean;
}

/**
 * Builds an index for codes of `codeBytes` bytes from (rowid, code) pairs in ascending rowid
 * order, sized exactly for `count` documents (a hint; more are accepted), or at once from
 * `packed` rowids (ascending) and codes (a snapshot).
 */
export function createBinaryIndex(
  codeBytes: number,
  count = 0,
  source: Iterable<[number, Uint8Array]> = [],
  packed?: { rowids: Uint32Array; codes: Uint8Array },
  options: BinaryIndexOptions = {},
): BinaryIndex {
  if (!Number.isInteger(codeBytes) || codeBytes <= 0) throw new Error(`invalid code size ${codeBytes}`);
  const id = nextId++;
  const minPartSlots = options.minPartSlots ?? MIN_PART_SLOTS;
  const pool = () => options.pool ?? scanPool();
  // What the scan threads hold of this index changes with `version` (scan-pool.ts).
  let version = 0;

  let capacity = Math.max(count, 0); // slots the codes area holds
  let used = 0;
  let dead = 0;
  let rowids = new Uint32Array(capacity);
  let tomb = sharedBytes(Math.ceil(capacity / 8));
  let scratchBytes = 0;
  let memory = sharedMemory(pagesFor(capacity, 0));
  let kernel: HammingKernel = createHammingKernel(codeBytes, memory);
  let bytes = new Uint8Array(memory.buffer);

  function pagesFor(slots: number, scratch: number): number {
    const total = slots * codeBytes + scratch;
    if (total > MAX_MEMORY) throw errors.internal(`the index cannot hold ${slots} codes of ${codeBytes} bytes (4 GiB limit)`);
    return Math.max(1, Math.ceil(total / PAGE));
  }

  /** Grows the memory to hold `slots` codes plus `scratch` bytes after them. */
  function ensureMemory(slots: number, scratch: number): void {
    const pages = pagesFor(slots, scratch);
    const have = memory.buffer.byteLength / PAGE;
    if (pages > have) {
      memory.grow(pages - have);
      bytes = new Uint8Array(memory.buffer);
      version++;
    }
  }

  function ensureCapacity(slots: number): void {
    if (slots > capacity) {
      ensureMemory(Math.max(slots, Math.ceil(capacity * 1.03125)), scratchBytes);
      // The memory may hold more than asked (whole pages): use it all.
      capacity = Math.floor((memory.buffer.byteLength - scratchBytes) / codeBytes);
    }
    if (slots > rowids.length) {
      const grown = new Uint32Array(Math.max(slots, Math.ceil(rowids.length * 1.0625)));
      grown.set(rowids.subarray(0, used));
      rowids = grown;
      const t = sharedBytes(Math.ceil(rowids.length / 8));
      t.set(tomb);
      tomb = t;
      version++;
    }
  }

  const isDead = (slot: number) => (tomb[slot >> 3]! & (1 << (slot & 7))) !== 0;

  function slotOf(rowid: number, from = 0): number {
    let lo = from;
    let hi = used - 1;
    // Rowids are distinct increasing integers, so `rowid` is at most (rowid − rowids[lo]) slots
    // after lo: without deletes that is its slot, found at once, and a filter's ascending
    // rowids search only the few slots between one match and the next.
    if (lo <= hi && rowid >= rowids[lo]!) hi = Math.min(hi, lo + (rowid - rowids[lo]!));
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const r = rowids[mid]!;
      if (r === rowid) return mid;
      if (r < rowid) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  function append(rowid: number, code: Uint8Array): void {
    if (used > 0 && rowid <= rowids[used - 1]!) {
      throw errors.internal(`index out of order: rowid ${rowid} after ${rowids[used - 1]}`);
    }
    ensureCapacity(used + 1);
    bytes.set(code, used * codeBytes);
    rowids[used] = rowid;
    used++;
  }

  function checkCode(code: Uint8Array): void {
    if (code.length !== codeBytes) throw errors.internal(`a binary code has ${code.length} bytes, expected ${codeBytes}`);
  }

  for (const [rowid, code] of source) {
    checkCode(code);
    append(rowid, code);
  }
  if (packed) {
    const n = packed.rowids.length;
    if (packed.codes.length !== n * codeBytes) throw errors.internal(`packed codes hold ${packed.codes.length} bytes for ${n} rowids of ${codeBytes}-byte codes`);
    for (let i = 1; i < n; i++) if (packed.rowids[i]! <= packed.rowids[i - 1]!) throw errors.internal(`packed rowids out of order at ${i}`);
    if (used > 0 && n > 0 && packed.rowids[0]! <= rowids[used - 1]!) throw errors.internal('packed rowids must follow the pairs');
    ensureCapacity(used + n);
    bytes.set(packed.codes, used * codeBytes);
    rowids.set(packed.rowids, used);
    used += n;
  }

  /** Moves live slots down over the tombstones; shrinks the memory when it is mostly unused. */
  function compact(): void {
    if (dead > 0) {
      let to = 0;
      for (let from = 0; from < used; from++) {
        if (isDead(from)) continue;
        if (to !== from) {
          bytes.copyWithin(to * codeBytes, from * codeBytes, (from + 1) * codeBytes);
          rowids[to] = rowids[from]!;
        }
        to++;
      }
      used = to;
      dead = 0;
      tomb.fill(0);
    }
    // WebAssembly memory cannot shrink: move to a fresh, exactly sized one when much is idle.
    if (capacity > 1.125 * used + PAGE / codeBytes || rowids.length > 1.125 * used + 1024) {
      const fresh = sharedMemory(pagesFor(used, scratchBytes));
      new Uint8Array(fresh.buffer).set(bytes.subarray(0, used * codeBytes));
      memory = fresh;
      kernel = createHammingKernel(codeBytes, memory);
      bytes = new Uint8Array(memory.buffer);
      capacity = Math.floor((memory.buffer.byteLength - scratchBytes) / codeBytes);
      rowids = rowids.slice(0, used);
      tomb = sharedBytes(Math.ceil(used / 8));
      version++;
    }
  }

  const target = (): ScanTarget => ({ id, version, module: hammingModule(codeBytes), memory, tomb });

  function search(query: FirstStageQuery, k: number, filter?: readonly number[]): FirstStageResult {
    const { bytes: queryInput, asymmetric, maxDistance } = kernelInput(query, codeBytes);
    if (!Number.isInteger(k) || k < 1) throw new Error(`k must be a positive integer, got ${k}`);
    const cap = Math.max(1024, 2 * k);
    // Room for the largest query input: 4 bit-planes of 8-byte words (asymmetric.ts).
    const queryBytes = Math.ceil(codeBytes / 8) * 8;
    // A scan of every document is split over the scan threads when each gets enough of them.
    const threads = filter ? 1 : Math.max(1, Math.min(pool().threads, Math.floor(used / minPartSlots)));
    // The scratch area starts at the first multiple of 8 after the codes (pairs are u32 views).
    const need = 8 + 4 * queryBytes + threads * cap * 8 + LIST_CHUNK * 4;
    if (need > scratchBytes || capacity * codeBytes + need > memory.buffer.byteLength) {
      scratchBytes = Math.max(need, scratchBytes);
      ensureMemory(capacity, scratchBytes);
    }
    const scan = asymmetric ? kernel.scanAsymmetric : kernel.scan;
    const base = Math.ceil((capacity * codeBytes) / 8) * 8;
    const queryPtr = base;
    const outPtr = base + 4 * queryBytes;
    const listPtr = outPtr + threads * cap * 8;
    bytes.set(queryInput, queryPtr);
    const tombs = dead > 0 ? tomb : null;
    const pairsAt = (ptr: number) => new Uint32Array(memory.buffer, ptr, cap * 2);
    const job = (start: number, end: number, ptr: number) => ({ start, end, queryPtr, outPtr: ptr, pairs: pairsAt(ptr), cap, keep: k, maxDistance, tomb: tombs });

    let pairs: Uint32Array;
    let have: number;
    let scanned: number;
    if (filter) {
      scanned = filter.length;
      ({ pairs, have } = searchList(filter, k, asymmetric, queryPtr, outPtr, listPtr, cap, maxDistance, tombs));
    } else if (threads === 1) {
      scanned = used - dead;
      pairs = pairsAt(outPtr);
      have = scanSlots(scan, kernel.written, job(0, used, outPtr));
    } else {
      scanned = used - dead;
      const parts = Array.from({ length: threads }, (_, t) => ({
        start: Math.floor((used * t) / threads),
        end: Math.floor((used * (t + 1)) / threads),
        outPtr: outPtr + t * cap * 8,
      }));
      const own = (t: number) => scanSlots(scan, kernel.written, job(parts[t]!.start, parts[t]!.end, parts[t]!.outPtr));
      const counts = pool()
        .scan(target(), { queryPtr, cap, keep: k, maxDistance, asymmetric, dead: dead > 0 }, parts, () => own(0))
        .map((count, t) => count ?? own(t)); // a thread that failed: its part here
      // Each part's best, in part (so slot) order, then the best of them all.
      pairs = new Uint32Array(2 * counts.reduce((a, b) => a + b, 0));
      let at = 0;
      counts.forEach((count, t) => {
        pairs.set(pairsAt(parts[t]!.outPtr).subarray(0, 2 * count), at);
        at += 2 * count;
      });
      have = prunePairs(pairs, at / 2, k, maxDistance, null).n;
    }
    const order = Array.from({ length: have }, (_, j) => j).sort((a, b) => pairs[2 * a + 1]! - pairs[2 * b + 1]! || pairs[2 * a]! - pairs[2 * b]!);
    return {
      rowids: order.map((j) => rowids[pairs[2 * j]!]!),
      distances: order.map((j) => pairs[2 * j + 1]!),
      scanned,
    };
  }

  /** The best `k` of the slots of `filter`'s rowids (ascending), chunk by chunk through the list area. */
  function searchList(filter: readonly number[], k: number, asymmetric: boolean, queryPtr: number, outPtr: number, listPtr: number, cap: number, maxDistance: number, tombs: Uint8Array | null) {
    const scanList = asymmetric ? kernel.scanListAsymmetric : kernel.scanList;
    const pairs = new Uint32Array(memory.buffer, outPtr, cap * 2);
    const list = new Uint32Array(memory.buffer, listPtr, LIST_CHUNK);
    // The kernel's list entry, with the list's address bound: positions are list positions.
    const scan = (start: number, end: number, q: number, thr: number, out: number, room: number) => scanList(listPtr, start, end, q, thr, out, room);
    const state = { have: 0, thr: maxDistance };
    let from = 0;
    for (let start = 0; start < filter.length; start += LIST_CHUNK) {
      const end = Math.min(filter.length, start + LIST_CHUNK);
      for (let j = start; j < end; j++) {
        const slot = slotOf(filter[j]!, from);
        if (slot < 0 || isDead(slot)) throw errors.internal(`document rowid ${filter[j]} is in the database but not in the index`);
        list[j - start] = slot;
        from = slot + 1;
      }
      collect(scan, kernel.written, { start: 0, end: end - start, queryPtr, outPtr, pairs, cap, keep: k, maxDistance, tomb: tombs }, state);
    }
    return { pairs, have: prunePairs(pairs, state.have, k, maxDistance, tombs).n };
  }

  return {
    codeBytes,
    size: () => used - dead,
    slots: () => used,
    tombstones: () => dead,
    memoryBytes: () => memory.buffer.byteLength + rowids.byteLength + tomb.byteLength,
    reserve(additional) {
      ensureCapacity(used + additional);
    },
    upsert(rowid, code) {
      checkCode(code);
      const slot = used > 0 && rowid <= rowids[used - 1]! ? slotOf(rowid) : -1;
      if (slot >= 0 && !isDead(slot)) bytes.set(code, slot * codeBytes);
      else append(rowid, code);
    },
    remove(rowid) {
      const slot = slotOf(rowid);
      if (slot < 0 || isDead(slot)) return false;
      tomb[slot >> 3]! |= 1 << (slot & 7);
      dead++;
      if (dead > 64 && dead * 16 > used) compact();
      return true;
    },
    compact,
    packed() {
      compact();
      return { rowids: rowids.subarray(0, used), codes: bytes.subarray(0, used * codeBytes) };
    },
    search,
    release() {
      (options.pool ?? scanPool()).detach(id);
    },
    has(rowid) {
      const slot = slotOf(rowid);
      return slot >= 0 && !isDead(slot);
    },
    *entries() {
      for (let slot = 0; slot < used; slot++) {
        if (isDead(slot)) continue;
        yield { rowid: rowids[slot]!, code: bytes.slice(slot * codeBytes, (slot + 1) * codeBytes) };
      }
    },
  };
}

/** A WebAssembly memory the scan threads can share (its maximum only reserves address space). */
function sharedMemory(pages: number): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial: pages, maximum: MAX_MEMORY / PAGE, shared: true });
}

function sharedBytes(length: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(length));
}
