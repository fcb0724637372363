/**
 * The first-stage kernel: Hamming distances between one packed query code and many packed
 * document codes, as WebAssembly generated at start from the readable builder below (no
 * binary is committed). WebAssembly gives us the CPU's `popcnt` (`i64.popcnt`), which plain
 * JavaScript has no access to; the module is specialized for one code size, so the
 * per-document loop is fully unrolled. See docs/search.md for the measurements that chose it.
 *
 * Both exported functions walk documents in slot order and append every document whose
 * distance is ≤ `thr` to an output buffer of (slot u32, distance u32) pairs, stopping when the
 * buffer holds `cap` pairs. They return the slot (or list position) to resume from; the
 * number of pairs written is in the exported global `written`. The caller tightens `thr`
 * between calls (see binary-index.ts), so after the first few thousand documents almost
 * nothing is written.
 *
 *   scan(start, end, queryPtr, thr, outPtr, cap) → next slot     codes of slots [start, end)
 *   scanList(listPtr, start, end, queryPtr, thr, outPtr, cap)    slots listed as u32 at listPtr
 *   scanAsymmetric / scanListAsymmetric                          the same with the asymmetric
 *       distance of a 4-bit query given as 4 bit-planes (asymmetricExpr, asymmetric.ts)
 *
 * Codes are stored back to back from address 0, `codeBytes` each, in the imported memory
 * (a shared one: scan threads read the same codes, scan-pool.ts).
 */

import { HEADER, I32, I64, mem, name, op, section, sleb, uleb, VOID, vec } from '../wasm/builder.js';

/**
 * Documents per iteration of the plain Hamming scan (at most 4: the locals it can use). Two
 * measured best on this machine: one was 3% slower at 10M codes, four 10% slower.
 */
const UNROLL = 2;

/**
 * The expression that leaves the Hamming distance (i32) between the code at address `p`
 * (a local) plus `base` bytes and the query held in locals: 8-byte words with i64.popcnt, then a 4/2/1-byte
 * tail with i32.popcnt, so any code size (dimension / 8 bytes) works without padding.
 */
function distanceExpr(codeBytes: number, p: number, qLocal: (word: number) => number, base = 0): number[] {
  const parts: number[][] = [];
  let offset = 0;
  let word = 0;
  while (codeBytes - offset >= 8) {
    parts.push([op.localGet, ...uleb(p), op.i64Load, ...mem(0, base + offset), op.localGet, ...uleb(qLocal(word)), op.i64Xor, op.i64Popcnt]);
    offset += 8;
    word++;
  }
  // Sum the i64 words, then continue in i32 for the tail.
  const out: number[] = [];
  if (parts.length > 0) {
    parts.forEach((part, i) => {
      out.push(...part);
      if (i > 0) out.push(op.i64Add);
    });
    out.push(op.i32WrapI64);
  } else {
    out.push(op.i32Const, 0);
  }
  for (const [size, load] of [
    [4, op.i32Load],
    [2, op.i32Load16u],
    [1, op.i32Load8u],
  ] as const) {
    if (codeBytes - offset >= size) {
      out.push(op.localGet, ...uleb(p), load, ...mem(0, base + offset), op.localGet, ...uleb(qLocal(word)), op.i32Xor, op.i32Popcnt, op.i32Add);
      offset += size;
      word++;
    }
  }
  return out;
}

/**
 * The asymmetric distance (i32) of the code at address `p`: the query is 4 bit-planes U_0..U_3
 * of levels u_i = k_i + 7 in [0, 14] (see asymmetric.ts), and with d the document's bits
 *
 *   distance = 7·dim − Σ_{d_i = 1} k_i = 7·dim + 7·popcount(d) − Σ_j 2^j · popcount(d AND U_j)
 *
 * which is ≥ 0 and smaller for documents closer to the query. `plane(j, word)` is the local
 * holding word `word` of plane j; `acc` (i64) and `dw` (i64) / `dt` (i32) are scratch locals.
 */
function asymmetricExpr(codeBytes: number, p: number, plane: (j: number, word: number) => number, acc: number, dw: number, dt: number): number[] {
  const out: number[] = [op.i64Const, ...sleb(7 * codeBytes * 8), op.localSet, ...uleb(acc)];
  let offset = 0;
  let word = 0;
  while (codeBytes - offset >= 8) {
    out.push(op.localGet, ...uleb(p), op.i64Load, ...mem(0, offset), op.localSet, ...uleb(dw));
    // acc += 7 · popcount(d)
    out.push(op.localGet, ...uleb(acc), op.localGet, ...uleb(dw), op.i64Popcnt, op.i64Const, 7, op.i64Mul, op.i64Add);
    // acc -= Σ_j popcount(d & U_j) << j
    for (let j = 0; j < 4; j++) {
      out.push(op.localGet, ...uleb(dw), op.localGet, ...uleb(plane(j, word)), op.i64And, op.i64Popcnt);
      if (j > 0) out.push(op.i64Const, j, op.i64Shl);
      out.push(op.i64Sub);
    }
    out.push(op.localSet, ...uleb(acc));
    offset += 8;
    word++;
  }
  for (const [size, load] of [
    [4, op.i32Load],
    [2, op.i32Load16u],
    [1, op.i32Load8u],
  ] as const) {
    if (codeBytes - offset < size) continue;
    out.push(op.localGet, ...uleb(p), load, ...mem(0, offset), op.localSet, ...uleb(dt));
    out.push(op.localGet, ...uleb(acc), op.localGet, ...uleb(dt), op.i32Popcnt, op.i32Const, 7, op.i32Mul, op.i64ExtendI32U, op.i64Add);
    for (let j = 0; j < 4; j++) {
      out.push(op.localGet, ...uleb(dt), op.localGet, ...uleb(plane(j, word)), op.i32And, op.i32Popcnt);
      if (j > 0) out.push(op.i32Const, j, op.i32Shl);
      out.push(op.i64ExtendI32U, op.i64Sub);
    }
    out.push(op.localSet, ...uleb(acc));
    offset += size;
    word++;
  }
  out.push(op.localGet, ...uleb(acc), op.i32WrapI64);
  return out;
}

/** The query's words: i64 locals for the 8-byte words, then i32 locals for the tail. */
function queryWords(codeBytes: number): { size: 8 | 4 | 2 | 1; offset: number }[] {
  const words: { size: 8 | 4 | 2 | 1; offset: number }[] = [];
  let offset = 0;
  while (codeBytes - offset >= 8) {
    words.push({ size: 8, offset });
    offset += 8;
  }
  for (const size of [4, 2, 1] as const) {
    if (codeBytes - offset >= size) {
      words.push({ size, offset });
      offset += size;
    }
  }
  return words;
}

/**
 * One scanning function. `list` selects scanList (slots read from a u32 list) over scan
 * (consecutive slots). Parameters come first, then locals, in local index order.
 */
function scanBody(codeBytes: number, list: boolean, asymmetric = false): number[] {
  // Parameters.
  let n = 0;
  const P = {
    listPtr: list ? n++ : -1,
    start: n++,
    end: n++,
    queryPtr: n++,
    thr: n++,
    out: n++,
    cap: n++,
  };
  const paramCount = n;
  // Locals.
  const L = { i: n++, p: n++, d: n++, written: n++, slot: n++, dt: n++, limit: n++ };
  const words = queryWords(codeBytes);
  const i64Words = words.filter((w) => w.size === 8).length;
  // Query words as locals: 8-byte words (i64) first, then the tail (i32); asymmetric kernels
  // hold 4 planes of them, plane j at queryPtr + j·queryBytes.
  const planes = asymmetric ? 4 : 1;
  const queryBytes = Math.ceil(codeBytes / 8) * 8;
  const firstI64 = n;
  n += planes * i64Words;
  const firstI32 = n;
  n += planes * (words.length - i64Words);
  const acc = asymmetric ? n++ : -1;
  const dw = asymmetric ? n++ : -1;
  const local = (j: number, w: number) => (w < i64Words ? firstI64 + j * i64Words + w : firstI32 + j * (words.length - i64Words) + (w - i64Words));
  const q = (w: number) => local(0, w);

  const code: number[] = [];
  // Load the query words into locals once.
  for (let j = 0; j < planes; j++) {
    words.forEach((w, k) => {
      const load = w.size === 8 ? op.i64Load : w.size === 4 ? op.i32Load : w.size === 2 ? op.i32Load16u : op.i32Load8u;
      code.push(op.localGet, ...uleb(P.queryPtr), load, ...mem(0, j * queryBytes + w.offset), op.localSet, ...uleb(local(j, k)));
    });
  }
  code.push(op.i32Const, 0, op.localSet, ...uleb(L.written));
  // The loop's cursor: the list position (scanList), or the code's address itself (scan):
  // stepping an address rather than multiplying a slot kept a 10M scan at C's speed, about
  // 10% faster (docs/search.md); the slot is computed only for the few documents appended.
  const cursor = list ? L.i : L.p;
  const step = list ? 1 : codeBytes;
  const scaled = (param: number) => (list ? [op.localGet, ...uleb(param)] : [op.localGet, ...uleb(param), op.i32Const, ...sleb(codeBytes), op.i32Mul]);
  code.push(...scaled(P.start), op.localSet, ...uleb(cursor));
  code.push(...scaled(P.end), op.localSet, ...uleb(L.limit));
  const entry = () => [op.localGet, ...uleb(P.out), op.localGet, ...uleb(L.written), op.i32Const, 8, op.i32Mul, op.i32Add];
  /** Appends (slot, distance local); when the buffer is then full, runs `stop` (which leaves the loops). */
  const append = (slot: number[], d: number, stop: number[]) => [
    ...entry(), ...slot, op.i32Store, ...mem(2, 0),
    ...entry(), op.localGet, ...uleb(d), op.i32Store, ...mem(2, 4),
    op.localGet, ...uleb(L.written), op.i32Const, 1, op.i32Add, op.localTee, ...uleb(L.written),
    op.localGet, ...uleb(P.cap), op.i32Eq, op.if, VOID, ...stop, op.end,
  ];
  const stepBy = (bytes: number) => [op.localGet, ...uleb(L.p), op.i32Const, ...sleb(bytes), op.i32Add, op.localSet, ...uleb(L.p)];
  code.push(op.block, VOID); // the exit
  if (!list && !asymmetric) {
    // UNROLL documents an iteration while that many are left (their distances in locals the
    // plain scan does not use); the loop below does the last few. A few percent at 10M codes,
    // which brings a scan to the plain C scan's time (docs/search.md).
    const distances = [L.d, L.slot, L.dt, L.i].slice(0, UNROLL);
    code.push(op.block, VOID, op.loop, VOID);
    code.push(op.localGet, ...uleb(L.p), op.i32Const, ...sleb(UNROLL * codeBytes), op.i32Add, op.localGet, ...uleb(L.limit), op.i32GtU, op.brIf, 1);
    distances.forEach((d, u) => code.push(...distanceExpr(codeBytes, L.p, q, u * codeBytes), op.localSet, ...uleb(d)));
    // Depths inside append's `if`: 0 that if, 1 the distance test, 2 the loop, 3 its block, 4 the exit.
    const slotOfP = [op.localGet, ...uleb(L.p), op.i32Const, ...sleb(codeBytes), op.i32DivU];
    distances.forEach((d, u) => {
      code.push(op.localGet, ...uleb(d), op.localGet, ...uleb(P.thr), op.i32LeU, op.if, VOID);
      code.push(...append([...slotOfP, op.i32Const, ...sleb(u), op.i32Add], d, [...stepBy((u + 1) * codeBytes), op.br, 4]), op.end);
    });
    code.push(...stepBy(UNROLL * codeBytes), op.br, 0);
    code.push(op.end, op.end);
  }
  code.push(op.loop, VOID);
  // while (cursor < limit)
  code.push(op.localGet, ...uleb(cursor), op.localGet, ...uleb(L.limit), op.i32GeU, op.brIf, 1);
  if (list) {
    // slot = list[i];  p = slot * codeBytes
    code.push(op.localGet, ...uleb(P.listPtr), op.localGet, ...uleb(L.i), op.i32Const, 4, op.i32Mul, op.i32Add, op.i32Load, ...mem(2, 0));
    code.push(op.localTee, ...uleb(L.slot), op.i32Const, ...sleb(codeBytes), op.i32Mul, op.localSet, ...uleb(L.p));
  }
  const slot = list ? [op.localGet, ...uleb(L.slot)] : [op.localGet, ...uleb(L.p), op.i32Const, ...sleb(codeBytes), op.i32DivU];
  const advance = [op.localGet, ...uleb(cursor), op.i32Const, ...sleb(step), op.i32Add, op.localSet, ...uleb(cursor)];
  // d = distance; if (d <= thr) append (slot, d)
  const distance = asymmetric ? asymmetricExpr(codeBytes, L.p, local, acc, dw, L.dt) : distanceExpr(codeBytes, L.p, q);
  code.push(...distance, op.localTee, ...uleb(L.d), op.localGet, ...uleb(P.thr), op.i32LeU, op.if, VOID);
  // Buffer full: step past this document and stop (br 3 leaves both ifs, the loop and the exit).
  code.push(...append(slot, L.d, [...advance, op.br, 3]), op.end);
  code.push(...advance, op.br, 0);
  code.push(op.end, op.end);
  // written → global 0; return the position to resume from (a slot, or a list position)
  code.push(op.localGet, ...uleb(L.written), op.globalSet, 0);
  code.push(op.localGet, ...uleb(cursor), ...(list ? [] : [op.i32Const, ...sleb(codeBytes), op.i32DivU]), op.end);

  // Local declarations in index order: 7 i32 scalars, the i64 query words, the i32 tail words, then acc and dw (i64).
  const locals = [
    [...uleb(7), I32],
    ...(i64Words > 0 ? [[...uleb(planes * i64Words), I64]] : []),
    ...(words.length > i64Words ? [[...uleb(planes * (words.length - i64Words)), I32]] : []),
    ...(asymmetric ? [[...uleb(2), I64]] : []),
  ];
  const body = [...vec(locals), ...code];
  void paramCount;
  return [...uleb(body.length), ...body];
}

/** The WebAssembly binary of a kernel for codes of `codeBytes` bytes. */
export function buildHammingWasm(codeBytes: number): Uint8Array {
  if (!Number.isInteger(codeBytes) || codeBytes < 1 || codeBytes > 65536) throw new Error(`code size ${codeBytes} bytes is out of range`);
  const scanType = [0x60, ...vec([[I32], [I32], [I32], [I32], [I32], [I32]]), ...vec([[I32]])];
  const scanListType = [0x60, ...vec([[I32], [I32], [I32], [I32], [I32], [I32], [I32]]), ...vec([[I32]])];
  const bytes = [
    ...HEADER,
    ...section(1, vec([scanType, scanListType])),
    // The memory: shared (limits flag 3: minimum, maximum, shared), so that scan threads can
    // scan the same codes (scan-pool.ts); the maximum is wasm32's 4 GiB.
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x03, ...uleb(1), ...uleb(65536)]])),
    ...section(3, vec([uleb(0), uleb(1), uleb(0), uleb(1)])),
    ...section(6, vec([[I32, 0x01, op.i32Const, 0, op.end]])),
    ...section(
      7,
      vec([
        [...name('scan'), 0x00, 0],
        [...name('scanList'), 0x00, 1],
        [...name('scanAsymmetric'), 0x00, 2],
        [...name('scanListAsymmetric'), 0x00, 3],
        [...name('written'), 0x03, 0],
      ]),
    ),
    ...section(10, vec([scanBody(codeBytes, false), scanBody(codeBytes, true), scanBody(codeBytes, false, true), scanBody(codeBytes, true, true)])),
  ];
  return new Uint8Array(bytes);
}

export interface HammingKernel {
  scan(start: number, end: number, queryPtr: number, thr: number, outPtr: number, cap: number): number;
  scanList(listPtr: number, start: number, end: number, queryPtr: number, thr: number, outPtr: number, cap: number): number;
  /** As scan, with the asymmetric distance of a 4-plane query (asymmetricExpr). */
  scanAsymmetric(start: number, end: number, planesPtr: number, thr: number, outPtr: number, cap: number): number;
  scanListAsymmetric(listPtr: number, start: number, end: number, planesPtr: number, thr: number, outPtr: number, cap: number): number;
  /** Pairs written by the last call. */
  written(): number;
}

const modules = new Map<number, WebAssembly.Module>();

/** The compiled kernel for codes of `codeBytes` bytes (compiled once per size; scan threads get it too). */
export function hammingModule(codeBytes: number): WebAssembly.Module {
  let module = modules.get(codeBytes);
  if (!module) {
    module = new WebAssembly.Module(buildHammingWasm(codeBytes));
    modules.set(codeBytes, module);
  }
  return module;
}

/** A kernel for codes of `codeBytes` bytes over `memory`, a shared memory. */
export function createHammingKernel(codeBytes: number, memory: WebAssembly.Memory): HammingKernel {
  const instance = new WebAssembly.Instance(hammingModule(codeBytes), { env: { memory } });
  const e = instance.exports as {
    scan: HammingKernel['scan'];
    scanList: HammingKernel['scanList'];
    scanAsymmetric: HammingKernel['scanAsymmetric'];
    scanListAsymmetric: HammingKernel['scanListAsymmetric'];
    written: WebAssembly.Global;
  };
  return {
    scan: e.scan,
    scanList: e.scanList,
    scanAsymmetric: e.scanAsymmetric,
    scanListAsymmetric: e.scanListAsymmetric,
    written: () => e.written.value as number,
  };
}
