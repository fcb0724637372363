/**
 * Vectors of a model in clusters inside its calibration ranges: as with real models, many ranges
 * lie on one side of zero, so those dimensions' sign bits are the same for every document (first
 * dims wastes them), while a transform centred on the documents' mean gives every bit a use.
 * Clusters give each query neighbours worth finding; unit length makes the int8 ranking a cosine one. What the transform tests index.
 */
import type { Quantizer } from '../../src/quantization/quantize.js';
import { xorshift32 } from './random.js';

/** `n` vectors around `clusters` centres (the same centres for the same `clusterSeed`), drawn with `seed`. */
export function vectorsInRanges(quantizer: Pick<Quantizer, 'ranges'>, n: number, seed: number, clusterSeed = 1, clusters = 25): Float32Array[] {
  const { min, max } = quantizer.ranges;
  const d = min.length;
  const centre = (i: number) => (min[i]! + max[i]!) / 2;
  const half = (i: number) => (max[i]! - min[i]!) / 2;
  // A sum of three uniforms in [-1, 1]: bell-shaped, bounded.
  const bell = (next: () => number) => (next() / 2 ** 32 + next() / 2 ** 32 + next() / 2 ** 32) / 1.5 - 1;
  const c = xorshift32(clusterSeed);
  const centres = Array.from({ length: clusters }, () => Float32Array.from({ length: d }, (_, i) => centre(i) + half(i) * 0.6 * bell(c)));
  const next = xorshift32(seed);
  return Array.from({ length: n }, () => {
    const at = centres[next() % clusters]!;
    const v = Float32Array.from({ length: d }, (_, i) => at[i]! + half(i) * 0.3 * bell(next));
    // Unit length, as a sentence-transformers model's embeddings (the ranges are those of unit vectors).
    const norm = Math.hypot(...v);
    return v.map((x) => x / norm);
  });
}
