/**
 * The kernel that recomputes first-stage codes from int8 codes (transform.ts: int8Coder), as
 * WebAssembly SIMD generated at start from the readable builder below (no binary is committed).
 *
 * Bit j of a document is [bias_j + Σ_i w_ji·c_i > 0], w_j a transform row folded with the
 * bundle's ranges and c the document's int8 code. The kernel rounds each folded row to int16 with
 * its own scale s_j (the largest |w_ji| becomes QMAX) and decides
 *
 *   S_j = Σ_i q_ji·c_i  >  T_j = ⌊−bias_j·s_j⌋,   q_ji = round(s_j·w_ji)
 *
 * in exact i32 arithmetic: for an integer S, S > −bias_j·s_j exactly when S > ⌊−bias_j·s_j⌋, so the
 * bias costs no rounding beyond float64's, and the only approximation is the weights':
 * |q_ji/s_j − w_ji| ≤ 0.5/s_j moves the sum by at most (0.5/s_j)·Σ_i |c_i| (the bound the tests
 * derive from, test/unit/sign-kernel.test.ts). |S_j| ≤ d·QMAX·128 < 2³¹, so no sum overflows.
 *
 * The inner step takes 8 dimensions of one document (v128.load8x8_s widens the int8 code to
 * i16 lanes as it loads) against 8 rows, with i32x4.dot_i16x8_s into 8 accumulators (which fit
 * x86's 16 vector registers with the document and a weight); dimensions are unrolled (the module
 * is built for one dimension), the 8 sums reduced to two i32x4 of one sum a lane, compared with
 * the thresholds, and i16x8.bitmask gives the code's byte at once: rows are stored in reverse
 * within each group of 8 so that lane k is the byte's bit k (row 8b + 7 − k, packed
 * most significant bit first as packSigns packs them).
 *
 *   encode(weightsPtr, thresholdsPtr, blocks, codesPtr, count, outPtr)
 *       rows as int16 (8·blocks rows of d), thresholds as i32 (8·blocks), codes of `count`
 *       documents back to back (d bytes each); writes `blocks` bytes a document at outPtr.
 *
 * Rows pass in groups of 8 over a chunk of documents (CHUNK below): the group's weights (8·d·2
 * bytes, 6 KiB at d = 384) and the chunk stay in the first-level cache while every document of
 * the chunk passes.
 */
import { HEADER, I32, mem, name, op, section, simd, simdOp, sleb, uleb, V128, VOID, vec } from '../wasm/builder.js';

/** Documents copied into the kernel's memory per call: 64 codes of 384 dimensions are 24 KiB. */
const CHUNK = 64;
/** Rows per pass: one code byte. */
const ROWS = 8;

/** The largest |q_ji| for a dimension: 32767, or less where d·32767·128 would not fit an i32. */
export const qmaxFor = (dimension: number) => Math.min(32767, Math.floor((2 ** 31 - 1) / (128 * dimension)));

// Byte lanes of i8x16.shuffle that interleave two i32x4 a, b: [a0, b0, a1, b1], [a2, b2, a3, b3],
// then the halves of two vectors: [a0, a1, b0, b1], [a2, a3, b2, b3].
const LOW_32 = [0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23];
const HIGH_32 = [8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31];
const LOW_64 = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];
const HIGH_64 = [8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31];

/** The WebAssembly binary of the kernel for int8 codes of `dimension` dimensions (a multiple of 8). */
export function buildSignWasm(dimension: number): Uint8Array {
  if (!Number.isInteger(dimension) || dimension < 8 || dimension % 8 !== 0 || dimension > 4096) throw new Error(`dimension ${dimension} is not a multiple of 8 up to 4096`);
  const d = dimension;
  // Parameters, then locals, in index order.
  const P = { w: 0, t: 1, blocks: 2, codes: 3, count: 4, out: 5 };
  const L = { p: 6, end: 7, o: 8, outEnd: 9 };
  const x = 10;
  const acc = (k: number) => 11 + k;
  const ab = 11 + ROWS;
  const cd = ab + 1;
  const get = (local: number) => [op.localGet, ...uleb(local)];
  const set = (local: number) => [op.localSet, ...uleb(local)];
  const shuffle = (lanes: number[]) => [...simd(simdOp.i8x16Shuffle), ...lanes];
  /** Leaves [Σ a, Σ b, Σ c, Σ e] (the lanes of each of four accumulators summed). */
  const sum4 = (a: number, b: number, c: number, e: number) => [
    ...get(a), ...get(b), ...shuffle(LOW_32), ...get(a), ...get(b), ...shuffle(HIGH_32), ...simd(simdOp.i32x4Add), ...set(ab),
    ...get(c), ...get(e), ...shuffle(LOW_32), ...get(c), ...get(e), ...shuffle(HIGH_32), ...simd(simdOp.i32x4Add), ...set(cd),
    ...get(ab), ...get(cd), ...shuffle(LOW_64), ...get(ab), ...get(cd), ...shuffle(HIGH_64), ...simd(simdOp.i32x4Add),
  ];

  const code: number[] = [];
  // end = codes + count·d; outEnd = out + blocks (out steps one byte a group of rows)
  code.push(...get(P.codes), ...get(P.count), op.i32Const, ...sleb(d), op.i32Mul, op.i32Add, ...set(L.end));
  code.push(...get(P.out), ...get(P.blocks), op.i32Add, ...set(L.outEnd));
  code.push(op.block, VOID, op.loop, VOID); // over groups of 8 rows
  code.push(...get(P.out), ...get(L.outEnd), op.i32GeU, op.brIf, 1);
  code.push(...get(P.codes), ...set(L.p), ...get(P.out), ...set(L.o));
  code.push(op.block, VOID, op.loop, VOID); // over the chunk's documents
  code.push(...get(L.p), ...get(L.end), op.i32GeU, op.brIf, 1);
  for (let s = 0; s < d / 8; s++) {
    code.push(...get(L.p), ...simd(simdOp.v128Load8x8S), ...mem(0, 8 * s), ...set(x));
    for (let k = 0; k < ROWS; k++) {
      if (s > 0) code.push(...get(acc(k)));
      code.push(...get(x), ...get(P.w), ...simd(simdOp.v128Load), ...mem(0, 2 * (k * d + 8 * s)), ...simd(simdOp.i32x4DotI16x8S));
      if (s > 0) code.push(...simd(simdOp.i32x4Add));
      code.push(...set(acc(k)));
    }
  }
  // out[o] = bitmask of (sums > thresholds), lane k = bit k
  code.push(...get(L.o));
  code.push(...sum4(acc(0), acc(1), acc(2), acc(3)), ...get(P.t), ...simd(simdOp.v128Load), ...mem(0, 0), ...simd(simdOp.i32x4GtS));
  code.push(...sum4(acc(4), acc(5), acc(6), acc(7)), ...get(P.t), ...simd(simdOp.v128Load), ...mem(0, 16), ...simd(simdOp.i32x4GtS));
  code.push(...simd(simdOp.i16x8NarrowI32x4S), ...simd(simdOp.i16x8Bitmask), op.i32Store8, ...mem(0, 0));
  code.push(...get(L.p), op.i32Const, ...sleb(d), op.i32Add, ...set(L.p));
  code.push(...get(L.o), ...get(P.blocks), op.i32Add, ...set(L.o));
  code.push(op.br, 0, op.end, op.end);
  // the next group: its rows, its thresholds, the next byte of every code
  code.push(...get(P.w), op.i32Const, ...sleb(2 * ROWS * d), op.i32Add, ...set(P.w));
  code.push(...get(P.t), op.i32Const, ...sleb(4 * ROWS), op.i32Add, ...set(P.t));
  code.push(...get(P.out), op.i32Const, 1, op.i32Add, ...set(P.out));
  code.push(op.br, 0, op.end, op.end, op.end);

  const locals = [
    [...uleb(4), I32],
    [...uleb(1 + ROWS + 2), V128],
  ];
  const body = [...vec(locals), ...code];
  const encodeType = [0x60, ...vec([[I32], [I32], [I32], [I32], [I32], [I32]]), ...vec([])];
  return new Uint8Array([
    ...HEADER,
    ...section(1, vec([encodeType])),
    // The memory is the coder's own (not shared): it holds rows, thresholds and one chunk.
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, ...uleb(1)]])),
    ...section(3, vec([uleb(0)])),
    ...section(7, vec([[...name('encode'), 0x00, 0]])),
    ...section(10, vec([[...uleb(body.length), ...body]])),
  ]);
}

let simdSupport: boolean | undefined;

/**
 * Whether the kernel serves codes of `dimension` dimensions here: a multiple of 8 up to 4096, on
 * an engine with WebAssembly SIMD (Node 20's V8 has it on; where it is off the SIMD module does
 * not validate); else int8Coder keeps its scalar scan.
 */
export function signKernelServes(dimension: number): boolean {
  if (!Number.isInteger(dimension) || dimension < 8 || dimension % 8 !== 0 || dimension > 4096) return false;
  simdSupport ??= WebAssembly.validate(buildSignWasm(8));
  return simdSupport;
}

const modules = new Map<number, WebAssembly.Module>();

function signModule(dimension: number): WebAssembly.Module {
  let module = modules.get(dimension);
  if (!module) {
    module = new WebAssembly.Module(buildSignWasm(dimension));
    modules.set(dimension, module);
  }
  return module;
}

/** Folded rows rounded for the kernel, in its order (reversed within each group of 8). */
export interface Int16Rows {
  /** bits × d, row 8b + 7 − k at position 8b + k. */
  readonly rows: Int16Array;
  /** T_j = ⌊−bias_j·s_j⌋ clamped to i32, in the rows' order. */
  readonly thresholds: Int32Array;
  /** s_j by row j (natural order): the bound on a bit's error is (0.5 / s_j)·Σ|c_i|. */
  readonly scales: Float64Array;
}

/** Rounds folded rows (bits × d weights, bias by row) to int16 with a scale per row. */
export function int16Rows(weights: Float32Array, bias: Float64Array, dimension: number, bits: number): Int16Rows {
  const d = dimension;
  const qmax = qmaxFor(d);
  const rows = new Int16Array(bits * d);
  const thresholds = new Int32Array(bits);
  const scales = new Float64Array(bits);
  for (let j = 0; j < bits; j++) {
    let largest = 0;
    for (let i = 0; i < d; i++) largest = Math.max(largest, Math.abs(weights[j * d + i]!));
    // A zero row keeps scale 1: every q is 0 and the bit is the bias's sign.
    const s = largest > 0 ? qmax / largest : 1;
    scales[j] = s;
    const at = (j & ~7) + 7 - (j & 7);
    for (let i = 0; i < d; i++) rows[at * d + i] = Math.round(s * weights[j * d + i]!);
    thresholds[at] = Math.min(2 ** 31 - 1, Math.max(-(2 ** 31), Math.floor(-bias[j]! * s)));
  }
  return { rows, thresholds, scales };
}

/** Codes of int8 codes by the kernel; `rows` from int16Rows for `bits` (a multiple of 8) and d. */
export function createSignKernel(rows: Int16Rows, dimension: number, bits: number): (codes: Int8Array, count: number, out: Uint8Array) => void {
  const d = dimension;
  const bytes = bits / 8;
  // Layout: rows, thresholds, one chunk of codes, its codes out; 16-byte aligned.
  const align = (n: number) => Math.ceil(n / 16) * 16;
  const thresholdsAt = align(2 * bits * d);
  const codesAt = align(thresholdsAt + 4 * bits);
  const outAt = align(codesAt + CHUNK * d);
  const memory = new WebAssembly.Memory({ initial: Math.ceil((outAt + CHUNK * bytes) / 65536) });
  const instance = new WebAssembly.Instance(signModule(d), { env: { memory } });
  const encode = instance.exports.encode as (w: number, t: number, blocks: number, codesPtr: number, count: number, outPtr: number) => void;
  new Int16Array(memory.buffer, 0, bits * d).set(rows.rows);
  new Int32Array(memory.buffer, thresholdsAt, bits).set(rows.thresholds);
  const heap = new Int8Array(memory.buffer);
  const heapOut = new Uint8Array(memory.buffer);
  return (codes, count, out) => {
    for (let start = 0; start < count; start += CHUNK) {
      const n = Math.min(CHUNK, count - start);
      heap.set(codes.subarray(start * d, (start + n) * d), codesAt);
      encode(0, thresholdsAt, bytes, codesAt, n, outAt);
      out.set(heapOut.subarray(outAt, outAt + n * bytes), start * bytes);
    }
  };
}
