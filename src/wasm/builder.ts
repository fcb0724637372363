/**
 * The pieces of the WebAssembly binary format that qembed's generated kernels are written with
 * (first-stage/hamming-kernel.ts, transform/sign-kernel.ts): opcodes, LEB128 immediates, names,
 * vectors and sections. The kernels are built at start from readable builders, so no binary is
 * committed; this module only spells the format, each kernel says what it computes.
 */

/** Opcodes of the WebAssembly 1.0 binary format that the kernels use. */
export const op = {
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  globalSet: 0x24,
  i32Load: 0x28,
  i64Load: 0x29,
  i32Load8u: 0x2d,
  i32Load16u: 0x2f,
  i32Store: 0x36,
  i32Store8: 0x3a,
  i32Const: 0x41,
  i32Eqz: 0x45,
  i32Eq: 0x46,
  i32GeU: 0x4f,
  i32LeU: 0x4d,
  i32GtU: 0x4b,
  i32Popcnt: 0x69,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i32Mul: 0x6c,
  i32DivU: 0x6e,
  i32Xor: 0x73,
  i32And: 0x71,
  i32Shl: 0x74,
  i64Const: 0x42,
  i64Popcnt: 0x7b,
  i64Add: 0x7c,
  i64Sub: 0x7d,
  i64Mul: 0x7e,
  i64And: 0x83,
  i64Shl: 0x86,
  i64Xor: 0x85,
  i32WrapI64: 0xa7,
  i64ExtendI32U: 0xad,
  /** The prefix of the fixed-width SIMD instructions (simd below). */
  simdPrefix: 0xfd,
} as const;

/** Fixed-width SIMD instructions (the 128-bit SIMD proposal, standard since 2021), by their index after the 0xfd prefix. */
export const simdOp = {
  v128Load: 0x00,
  /** Loads 8 bytes and sign-extends each to an i16 lane. */
  v128Load8x8S: 0x01,
  i8x16Shuffle: 0x0d,
  i32x4GtS: 0x3b,
  i16x8Bitmask: 0x84,
  i16x8NarrowI32x4S: 0x85,
  i32x4Add: 0xae,
  i32x4DotI16x8S: 0xba,
} as const;

/** Value and block types. */
export const I32 = 0x7f;
export const I64 = 0x7e;
export const V128 = 0x7b;
export const VOID = 0x40;

/** Unsigned LEB128, as the binary format encodes sizes, indices and unsigned immediates. */
export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 for i32.const. */
export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

/** A SIMD instruction: the prefix, then its index as unsigned LEB128. */
export const simd = (index: number) => [op.simdPrefix, ...uleb(index)];
export const name = (s: string) => [...uleb(s.length), ...Buffer.from(s, 'utf8')];
export const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
export const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
/** A memory access immediate: alignment (log2) and a constant offset. */
export const mem = (align: number, offset: number) => [...uleb(align), ...uleb(offset)];
/** The module header: magic and version 1. */
export const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
