/**
 * The WebAssembly SIMD kernel that recomputes first-stage codes from int8 codes
 * (src/transform/sign-kernel.ts, used by int8Coder): its bits are the exact signs of W(x̂ − μ)
 * wherever |y| exceeds the bound derived from its int16 rounding (test/helpers/sign-bound.ts),
 * the scalar scan it replaces does the same under the same bound, and the two differ rarely.
 */
import { describe, expect, it } from 'vitest';
import { createQuantizer } from '../../src/quantization/quantize.js';
import { buildSignWasm, qmaxFor, signKernelServes } from '../../src/transform/sign-kernel.js';
import { type CodeTransform, int8Coder, linearTransform, seededRotation } from '../../src/transform/transform.js';
import { xorshift32 } from '../helpers/random.js';
import { exactAndBound } from '../helpers/sign-bound.js';

const bitOf = (code: Uint8Array, j: number) => (code[j >> 3]! >> (7 - (j & 7))) & 1;

/** Ranges like a bundle's (each dimension within about ±0.15, not symmetric), int8 codes of vectors in them, two transforms. */
function setup(d: number, bits: number, documents: number) {
  const next = xorshift32(d);
  const uniform = () => next() / 4294967296;
  const min = Float32Array.from({ length: d }, () => -0.1 - 0.08 * uniform());
  const max = Float32Array.from({ length: d }, () => 0.1 + 0.08 * uniform());
  const quantizer = createQuantizer({ min, max });
  const codes = new Int8Array(documents * d);
  for (let n = 0; n < documents; n++) {
    const v = Float32Array.from({ length: d }, (_, i) => min[i]! + uniform() * (max[i]! - min[i]!));
    codes.set(quantizer.quantize(v, 'int8') as Int8Array, n * d);
  }
  const fitted = linearTransform(
    'itq',
    '0123456789abcdef',
    Float32Array.from({ length: d }, () => 0.02 * (uniform() - 0.5)),
    Float32Array.from({ length: bits * d }, () => uniform() - 0.5),
    bits,
  );
  return { quantizer, codes, transforms: [['a seeded rotation', seededRotation(d, bits, 3)] as const, ['a fitted transform', fitted] as const] };
}

describe('codes recomputed by the SIMD kernel', () => {
  for (const [d, bits, documents] of [
    [32, 32, 400],
    [48, 48, 400],
    [384, 128, 200],
  ] as const) {
    const { quantizer, codes, transforms } = setup(d, bits, documents);
    for (const [name, t] of transforms) {
      it(`are the exact signs outside the derived bound, as the scalar scan's are, and differ from them rarely: ${d} dimensions, ${bits} bits, ${name}`, () => {
        const bytes = bits / 8;
        const simd = int8Coder(t, quantizer);
        const scalar = int8Coder(t, quantizer, { scalar: true });
        expect([simd.kernel, scalar.kernel]).toEqual(['simd', 'scalar']);
        const fromSimd = new Uint8Array(documents * bytes);
        const fromScalar = new Uint8Array(documents * bytes);
        simd.encode(codes, documents, fromSimd);
        scalar.encode(codes, documents, fromScalar);
        let undecided = 0;
        let differ = 0;
        for (let n = 0; n < documents; n++) {
          const c = codes.subarray(n * d, (n + 1) * d);
          const a = fromSimd.subarray(n * bytes, (n + 1) * bytes);
          const b = fromScalar.subarray(n * bytes, (n + 1) * bytes);
          for (let j = 0; j < bits; j++) {
            if (bitOf(a, j) !== bitOf(b, j)) differ++;
            const { y, bound } = exactAndBound(t, quantizer, c, j, 'simd');
            if (Math.abs(y) <= bound) {
              undecided++;
              continue;
            }
            expect(bitOf(a, j), `simd: document ${n} bit ${j}, y ${y}, bound ${bound}`).toBe(y > 0 ? 1 : 0);
            expect(bitOf(b, j), `scalar: document ${n} bit ${j}`).toBe(y > 0 ? 1 : 0);
          }
        }
        // The bound is small next to y's spread: few bits are left to rounding, fewer differ.
        expect(undecided).toBeLessThan(0.01 * documents * bits);
        expect(differ).toBeLessThanOrEqual(undecided);
      });
    }
  }

  it('pack bit j as packSigns does (most significant bit first), by hand: rows ±x_0 and zero rows', () => {
    const d = 16;
    const quantizer = createQuantizer({ min: new Float32Array(d).fill(-1), max: new Float32Array(d).fill(1) });
    // 16 rows: row 1 is +x_0, row 6 is −x_0, row 9 is +x_1, the others zero (y = 0: bit 0).
    const matrix = new Float32Array(16 * d);
    matrix[1 * d + 0] = 1;
    matrix[6 * d + 0] = -1;
    matrix[9 * d + 1] = 1;
    const t = linearTransform('itq', '0123456789abcdef', new Float32Array(d), matrix, 16);
    // x̂_i = −1 + (c + 128.5)·2/255: c = −2 is below 0, c = 0 above
    const codes = new Int8Array(2 * d);
    codes[0] = -2;
    codes[1] = 0;
    codes[d] = 0;
    codes[d + 1] = -2;
    const out = new Uint8Array(4);
    const coder = int8Coder(t, quantizer);
    expect(coder.kernel).toBe('simd');
    coder.encode(codes, 2, out);
    expect([...out]).toEqual([0b00000010, 0b01000000, 0b01000000, 0b00000000]);
  });

  it('is a valid module built from readable code; dimensions not a multiple of 8 keep the scalar scan', () => {
    const wasm = buildSignWasm(48);
    expect(Array.from(wasm.subarray(0, 4))).toEqual([0, 0x61, 0x73, 0x6d]);
    expect(WebAssembly.validate(wasm)).toBe(true);
    expect(signKernelServes(48)).toBe(true);
    expect(signKernelServes(44)).toBe(false);
    expect(qmaxFor(384)).toBe(32767);
    expect(384 * qmaxFor(384) * 128).toBeLessThan(2 ** 31);
    expect(4096 * qmaxFor(4096) * 128).toBeLessThan(2 ** 31);
    const d = 44;
    const quantizer = createQuantizer({ min: new Float32Array(d).fill(-1), max: new Float32Array(d).fill(1) });
    const t: CodeTransform = seededRotation(d, 16, 1);
    expect(int8Coder(t, quantizer).kernel).toBe('scalar');
  });
});
