/**
 * How far a code recomputed from an int8 code (transform.ts: int8Coder) may be from the exact
 * y_j = W_j·(x̂ − μ) of the bucket centres x̂ = min + (c + 128.5)·step: a bit may come out either
 * way only where |y_j| is within this bound, and must be the sign of y_j elsewhere.
 *
 * Both paths fold row j into float32 weights w_ji = fl32(W_ji·step_i) (relative error ≤ 2^-24)
 * and a float64 bias. The scalar scan sums exact float64 products of w and c: with the bias's own
 * float64 rounding (≤ (d + 2)·2^-53 of its terms) and this test's float64 y, the total is within
 * 2^-23·Σ_i |W_ji|·(|step_i·c_i| + |min_i + 128.5·step_i| + |μ_i|).
 *
 * The SIMD kernel (sign-kernel.ts) adds the int16 rounding: q_ji = round(s_j·w_ji), where
 * s_j = QMAX / max_i |w_ji| and the float64 product s_j·w_ji (≤ 2^15) is itself within 2^-38 of
 * exact, so |q_ji/s_j − w_ji| ≤ (0.5 + 2^-37)/s_j, and Σ_i q_ji·c_i / s_j is within
 * (0.5 + 2^-37)/s_j · Σ_i |c_i| of Σ_i w_ji·c_i. Its integer sum is exact (no i32 overflows) and
 * its threshold ⌊−bias_j·s_j⌋ decides S > −bias_j·s_j exactly for an integer S, leaving only the
 * float64 product's 2^-53·|bias_j|, inside the 2^-23 term.
 */
import { qmaxFor } from '../../src/transform/sign-kernel.js';
import type { CodeTransform } from '../../src/transform/transform.js';
import type { Quantizer } from '../../src/quantization/quantize.js';

/** The exact y_j of int8 code `c` (float64) and the bound on a recomputed bit's error for `kernel`. */
export function exactAndBound(t: CodeTransform, quantizer: Quantizer, c: Int8Array, j: number, kernel: 'simd' | 'scalar'): { y: number; bound: number } {
  const d = t.dimension;
  const { steps } = quantizer;
  const { min } = quantizer.ranges;
  const w = (i: number) => (t.matrix ? t.matrix[j * d + i]! : i === j ? 1 : 0);
  let y = 0;
  let scale = 0;
  let largest = 0;
  let codeMass = 0;
  for (let i = 0; i < d; i++) {
    const centre = min[i]! + 128.5 * steps[i]!;
    y += w(i) * (centre + steps[i]! * c[i]! - t.mean[i]!);
    scale += Math.abs(w(i)) * (Math.abs(steps[i]! * c[i]!) + Math.abs(centre) + Math.abs(t.mean[i]!));
    largest = Math.max(largest, Math.abs(Math.fround(w(i) * steps[i]!)));
    codeMass += Math.abs(c[i]!);
  }
  let bound = 2 ** -23 * scale;
  if (kernel === 'simd' && largest > 0) bound += ((0.5 + 2 ** -37) / (qmaxFor(d) / largest)) * codeMass;
  return { y, bound };
}
