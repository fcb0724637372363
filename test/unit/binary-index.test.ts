import { describe, expect, it } from 'vitest';
import { xorshift32 } from '../helpers/random.js';
import { asymmetricQuery } from '../../src/first-stage/asymmetric.js';
import { createBinaryIndex } from '../../src/first-stage/binary-index.js';
import { buildHammingWasm, createHammingKernel } from '../../src/first-stage/hamming-kernel.js';
import { hammingQuery } from '../../src/first-stage/query.js';
import { createScanPool } from '../../src/first-stage/scan-pool.js';

/** Deterministic pseudo-random bytes. */
function rng(seed: number) {
  const next = xorshift32(seed);
  return () => next() & 0xff;
}
const randomCode = (next: () => number, bytes: number) => Uint8Array.from({ length: bytes }, next);

function hamming(a: Uint8Array, b: Uint8Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) {
    let x = a[i]! ^ b[i]!;
    while (x) {
      d += x & 1;
      x >>= 1;
    }
  }
  return d;
}

/** The exact answer: distance, then rowid (slot order) for ties. */
function bruteForce(docs: Map<number, Uint8Array>, query: Uint8Array, k: number, only?: number[]) {
  const rows = [...docs.entries()].filter(([r]) => !only || only.includes(r)).map(([rowid, code]) => ({ rowid, d: hamming(code, query) }));
  rows.sort((a, b) => a.d - b.d || a.rowid - b.rowid);
  return rows.slice(0, k);
}

describe('the Hamming kernel (generated WebAssembly)', () => {
  it('computes exact distances for any code size, with and without a slot list', () => {
    for (const bytes of [1, 3, 4, 7, 8, 13, 48, 96, 130]) {
      const next = rng(bytes);
      const n = 300;
      const memory = new WebAssembly.Memory({ initial: Math.ceil((n * bytes + 8192 + 4 * n) / 65536) + 1, maximum: 65536, shared: true });
      const kernel = createHammingKernel(bytes, memory);
      const mem = new Uint8Array(memory.buffer);
      for (let i = 0; i < n * bytes; i++) mem[i] = next();
      const queryPtr = n * bytes;
      const query = randomCode(next, bytes);
      mem.set(query, queryPtr);
      const outPtr = queryPtr + bytes + (8 - ((queryPtr + bytes) % 8));
      const end = kernel.scan(0, n, queryPtr, bytes * 8, outPtr, n);
      expect(end).toBe(n);
      expect(kernel.written()).toBe(n);
      const out = new Uint32Array(memory.buffer, outPtr, 2 * n);
      for (let i = 0; i < n; i++) {
        expect(out[2 * i]).toBe(i);
        expect(out[2 * i + 1]).toBe(hamming(mem.subarray(i * bytes, (i + 1) * bytes), query));
      }
      // Stops when the buffer is full and says where to resume.
      expect(kernel.scan(0, n, queryPtr, bytes * 8, outPtr, 5)).toBe(5);
      expect(kernel.written()).toBe(5);
      // A slot list, and a threshold that keeps only the near ones.
      const listPtr = outPtr + 16 * n;
      new Uint32Array(memory.buffer, listPtr, 3).set([7, 150, n - 1]);
      const thr = 4 * bytes;
      expect(kernel.scanList(listPtr, 0, 3, queryPtr, thr, outPtr, 10)).toBe(3);
      const expected = [7, 150, n - 1].filter((s) => hamming(mem.subarray(s * bytes, (s + 1) * bytes), query) <= thr);
      const got = Array.from(new Uint32Array(memory.buffer, outPtr, 2 * kernel.written())).filter((_, i) => i % 2 === 0);
      expect(got).toEqual(expected);
    }
  });

  it('is a valid module built from readable code, not a committed binary', () => {
    const wasm = buildHammingWasm(48);
    expect(Array.from(wasm.subarray(0, 4))).toEqual([0, 0x61, 0x73, 0x6d]);
    expect(() => new WebAssembly.Module(wasm)).not.toThrow();
  });
});

describe('the binary index', () => {
  it('finds the exact top k (ties by rowid) after inserts, overwrites and deletes, with and without a filter', () => {
    const bytes = 4; // 32 bits: many ties, which the order must settle
    const next = rng(7);
    const index = createBinaryIndex(bytes);
    const docs = new Map<number, Uint8Array>();
    let rowid = 10;
    for (let round = 0; round < 30; round++) {
      const batch = 1 + (round * 37) % 200;
      index.reserve(batch);
      for (let i = 0; i < batch; i++) {
        rowid += 1 + (i % 3);
        const code = randomCode(next, bytes);
        index.upsert(rowid, code);
        docs.set(rowid, code);
      }
      // Overwrite some in place, delete some.
      const rowids = [...docs.keys()];
      for (let i = 0; i < 20; i++) {
        const r = rowids[(i * 7919 + round) % rowids.length]!;
        if (!docs.has(r)) continue;
        if (i % 2) {
          const code = randomCode(next, bytes);
          index.upsert(r, code);
          docs.set(r, code);
        } else {
          expect(index.remove(r)).toBe(true);
          docs.delete(r);
        }
      }
      expect(index.size()).toBe(docs.size);
      const query = randomCode(next, bytes);
      for (const k of [1, 10, 40, 5000]) {
        const got = index.search(hammingQuery(query), k);
        const want = bruteForce(docs, query, k);
        expect(got.rowids).toEqual(want.map((w) => w.rowid));
        expect(got.distances).toEqual(want.map((w) => w.d));
        expect(got.scanned).toBe(docs.size);
      }
      const only = [...docs.keys()].filter((r) => r % 5 === 0);
      const filtered = index.search(hammingQuery(query), 12, only);
      expect(filtered.rowids).toEqual(bruteForce(docs, query, 12, only).map((w) => w.rowid));
      expect(filtered.scanned).toBe(only.length);
    }
    expect([...index.entries()].map((e) => e.rowid)).toEqual([...docs.keys()].sort((a, b) => a - b));
    for (const e of index.entries()) expect(Array.from(e.code)).toEqual(Array.from(docs.get(e.rowid)!));
  });

  it('splits a scan over threads with the results of one thread, through growth, deletes and compaction', async () => {
    const bytes = 6;
    const next = rng(11);
    const split = createScanPool(3);
    const single = createScanPool(1);
    try {
      const parallel = createBinaryIndex(bytes, 0, [], undefined, { pool: split, minPartSlots: 64 });
      const reference = createBinaryIndex(bytes, 0, [], undefined, { pool: single });
      const docs = new Map<number, Uint8Array>();
      let rowid = 0;
      for (let round = 0; round < 12; round++) {
        // Appends (the memory grows under the threads), then deletes: tombstones, then a compaction.
        const batch = 150 + round * 97;
        for (const index of [parallel, reference]) index.reserve(batch);
        for (let i = 0; i < batch; i++) {
          const code = randomCode(next, bytes);
          rowid++;
          for (const index of [parallel, reference]) index.upsert(rowid, code);
          docs.set(rowid, code);
        }
        for (const r of [...docs.keys()].filter((_, i) => (i + round) % 9 === 0)) {
          for (const index of [parallel, reference]) index.remove(r);
          docs.delete(r);
        }
        const query = randomCode(next, bytes);
        for (const k of [1, 40, 700]) {
          const got = parallel.search(hammingQuery(query), k);
          const want = bruteForce(docs, query, k);
          expect(got.rowids).toEqual(want.map((w) => w.rowid));
          expect(got.distances).toEqual(want.map((w) => w.d));
          expect(got.scanned).toBe(docs.size);
          // The asymmetric distance (any 4 planes of the query's size) splits the same way.
          const asymmetric = asymmetricQuery(Float32Array.from({ length: bytes * 8 }, () => next() - 128));
          expect(parallel.search(asymmetric, k)).toEqual(reference.search(asymmetric, k));
        }
      }
      expect(split.threads).toBe(3);
      parallel.release();
    } finally {
      await split.close();
      await single.close();
    }
  });

  it('stops early when k documents are at distance 0, and handles empty and tiny indexes', () => {
    const index = createBinaryIndex(8);
    expect(index.search(hammingQuery(new Uint8Array(8)), 5).rowids).toEqual([]);
    for (let r = 1; r <= 3000; r++) index.upsert(r, new Uint8Array(8));
    expect(index.search(hammingQuery(new Uint8Array(8)), 3).rowids).toEqual([1, 2, 3]);
    expect(index.remove(2)).toBe(true);
    expect(index.remove(2)).toBe(false);
    expect(index.search(hammingQuery(new Uint8Array(8)), 3).rowids).toEqual([1, 3, 4]);
  });

  it('searches indexes whose codes end anywhere (the scratch area is aligned after them)', () => {
    for (const bytes of [1, 2, 3, 5, 6, 7, 9]) {
      const next = rng(bytes + 100);
      for (const n of [1, 3, 7, 13]) {
        const docs = new Map<number, Uint8Array>();
        for (let r = 1; r <= n; r++) docs.set(r, randomCode(next, bytes));
        const index = createBinaryIndex(bytes, n, docs.entries());
        const query = randomCode(next, bytes);
        expect(index.search(hammingQuery(query), 5).rowids).toEqual(bruteForce(docs, query, 5).map((w) => w.rowid));
        const only = [...new Set([1, n])];
        expect(index.search(hammingQuery(query), 2, only).rowids).toEqual(bruteForce(docs, query, 2, only).map((w) => w.rowid));
      }
    }
  });

  it('refuses appends out of rowid order and codes of the wrong size', () => {
    const index = createBinaryIndex(4);
    index.upsert(5, new Uint8Array(4));
    expect(() => index.upsert(3, new Uint8Array(4))).toThrow(/out of order/);
    expect(() => index.upsert(9, new Uint8Array(5))).toThrow(/5 bytes, expected 4/);
    expect(() => index.search(hammingQuery(new Uint8Array(3)), 1)).toThrow(/3 bytes/);
  });

  it('stays within 1.2 × N × dim/8 bytes at load and while growing, and compacts tombstones', () => {
    const bytes = 48;
    const n = 50_000;
    const next = rng(3);
    const source = function* () {
      for (let r = 1; r <= n; r++) yield [r, randomCode(next, bytes)] as [number, Uint8Array];
    };
    const loaded = createBinaryIndex(bytes, n, source());
    loaded.search(hammingQuery(randomCode(next, bytes)), 40);
    expect(loaded.memoryBytes()).toBeLessThanOrEqual(1.2 * n * bytes);

    const grown = createBinaryIndex(bytes);
    for (let r = 1; r <= n; r++) {
      if (r % 256 === 1) grown.reserve(256);
      grown.upsert(r, randomCode(next, bytes));
    }
    grown.search(hammingQuery(randomCode(next, bytes)), 40);
    expect(grown.memoryBytes()).toBeLessThanOrEqual(1.2 * n * bytes);

    // Deleting most documents compacts the slots and gives memory back.
    for (let r = 1; r <= n; r++) if (r % 10 !== 0) grown.remove(r);
    grown.compact();
    expect(grown.size()).toBe(n / 10);
    expect(grown.slots()).toBe(n / 10);
    expect(grown.tombstones()).toBe(0);
    expect(grown.memoryBytes()).toBeLessThanOrEqual(1.2 * (n / 10) * bytes + 3 * 65536);
    expect(grown.search(hammingQuery(randomCode(next, bytes)), 5, [100, 200, 300]).rowids.sort((a, b) => a - b)).toEqual([100, 200, 300]);
  });
});
