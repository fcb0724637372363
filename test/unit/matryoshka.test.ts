/**
 * Matryoshka truncation (`dimensions` of /encode and the compatible APIs): the first k
 * dimensions scaled to unit length. The arithmetic: the input components are float32 (exact in
 * a double), the norm and each quotient are computed in double and each quotient is rounded
 * once to float32, so every output component is the exact unit-vector component times
 * (1 + δ) with |δ| ≤ 2⁻²⁴ (plus a double rounding of about 2⁻⁵³, far below). Hence the output
 * norm is within 2⁻²⁴ of 1 and every sign is kept.
 */
import { describe, expect, it } from 'vitest';
import { truncateVector } from '../../src/embedding/embed.js';
import { createQuantizer } from '../../src/quantization/quantize.js';
import { xorshift32 } from '../helpers/random.js';

const random = (n: number, seed: number) => {
  const next = xorshift32(seed);
  return Float32Array.from({ length: n }, () => (next() / 2 ** 32) * 2 - 1);
};
/** One float32 rounding (2⁻²⁴), and a margin for the double arithmetic of the check itself. */
const BOUND = 2 ** -24 + 1e-12;

describe('truncateVector', () => {
  it('keeps the first k components, scaled to unit length within one float32 rounding', () => {
    const v = random(64, 7);
    for (const k of [1, 8, 33, 63, 64]) {
      const t = truncateVector(v, k);
      expect(t).toHaveLength(k);
      expect(Math.abs(Math.hypot(...t) - 1)).toBeLessThanOrEqual(BOUND);
      const norm = Math.hypot(...v.subarray(0, k));
      for (let i = 0; i < k; i++) {
        const exact = v[i]! / norm;
        expect(Math.abs(t[i]! - exact)).toBeLessThanOrEqual(Math.abs(exact) * BOUND);
        expect(Math.sign(t[i]!)).toBe(Math.sign(v[i]!));
      }
    }
  });

  it('leaves a zero prefix zero and does not change its input', () => {
    expect(Array.from(truncateVector(new Float32Array(16), 4))).toEqual([0, 0, 0, 0]);
    const v = random(16, 3);
    const copy = Float32Array.from(v);
    truncateVector(v, 8);
    expect(v).toEqual(copy);
  });

  it('quantizes a prefix with the kept dimensions\' ranges: its codes are the prefix of the codes (unscaled)', () => {
    const min = Float32Array.from({ length: 16 }, (_, i) => -0.1 - i / 100);
    const max = Float32Array.from({ length: 16 }, (_, i) => 0.2 + i / 50);
    const full = createQuantizer({ min, max });
    const prefix = createQuantizer({ min: min.subarray(0, 8), max: max.subarray(0, 8) });
    const v = Float32Array.from({ length: 16 }, (_, i) => Math.sin(i) / 5);
    for (const precision of ['int8', 'uint8', 'binary', 'ubinary'] as const) {
      const whole = Array.from(full.quantize(v, precision));
      const part = Array.from(prefix.quantize(v.slice(0, 8), precision));
      expect(part).toEqual(whole.slice(0, part.length));
    }
  });
});
