/**
 * First-stage code transforms (src/transform/): first dims are today's codes, the seeded rotation
 * is orthogonal and the same on every machine, codes recomputed from int8 codes are the signs of
 * W(x̂ − μ) wherever rounding cannot decide them, and a fitted artifact is read as written and
 * refused when it does not fit.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeNpy } from '../../src/files/npy.js';
import { asymmetricQuery } from '../../src/first-stage/asymmetric.js';
import { encodeQuery } from '../../src/first-stage/query.js';
import { createQuantizer } from '../../src/quantization/quantize.js';
import { artifactLengths, loadTransform, readTransformManifest, TRANSFORM_FORMAT, transformFingerprint } from '../../src/transform/artifact.js';
import { asymmetricVector, type CodeTransform, codeOf, firstDims, int8Coder, linearTransform, project, seededRotation, TransformError } from '../../src/transform/transform.js';
import { xorshift32 } from '../helpers/random.js';
import { exactAndBound } from '../helpers/sign-bound.js';

const D = 48;
const next = xorshift32(3);
const uniform = () => next() / 4294967296;
// Ranges like a bundle's: each dimension within about ±0.15, not symmetric.
const min = Float32Array.from({ length: D }, () => -0.1 - 0.08 * uniform());
const max = Float32Array.from({ length: D }, () => 0.1 + 0.08 * uniform());
const quantizer = createQuantizer({ min, max });
const vectorInRange = () => Float32Array.from({ length: D }, (_, i) => min[i]! + uniform() * (max[i]! - min[i]!));
const vectors = Array.from({ length: 200 }, vectorInRange);
const int8Of = (v: Float32Array) => quantizer.quantize(v, 'int8') as Int8Array;
/** x̂ as dequantize.ts defines it: the centre of the int8 bucket, in float64. */
const dequantized = (c: Int8Array) => Array.from(c, (ci, i) => min[i]! + (ci + 128.5) * quantizer.steps[i]!);

const bitOf = (code: Uint8Array, j: number) => (code[j >> 3]! >> (7 - (j & 7))) & 1;

/** A fitted-like transform: a random matrix and a mean, as an artifact would hold. */
function randomTransform(bits: number): CodeTransform {
  const mean = Float32Array.from({ length: D }, () => 0.02 * (uniform() - 0.5));
  const matrix = Float32Array.from({ length: bits * D }, () => uniform() - 0.5);
  return linearTransform('itq', '0123456789abcdef', mean, matrix, bits);
}

describe('first dims', () => {
  it('are the signs of the first dimensions, packed as ubinary is', () => {
    const t = firstDims(D, 16);
    for (const v of vectors) expect([...codeOf(t, v)]).toEqual([...quantizer.toUbinary(v).subarray(0, 2)]);
    expect([...asymmetricVector(t, vectors[0]!)]).toEqual([...vectors[0]!.subarray(0, 16)]);
  });

  it('refuse a code length that is not a multiple of 8 up to the dimension', () => {
    for (const bits of [0, 12, D + 8, 1.5]) expect(() => firstDims(D, bits)).toThrow(TransformError);
  });
});

describe('the seeded rotation', () => {
  it('has orthonormal rows, the same for the same seed, and a shorter code is a prefix of a longer one', () => {
    const t = seededRotation(D, D, 7);
    const W = t.matrix!;
    // Orthonormal in float64 to ~1e-15, then each weight rounded to float32 (relative error ≤ 2^-24):
    // a dot product of two unit rows moves by at most 2 · 2^-24 · Σ|a_i b_i| ≤ 2^-23 · 1, plus its
    // own float64 rounding: within 2^-22 of 0 or 1.
    for (let a = 0; a < D; a++) {
      for (let b = 0; b < D; b++) {
        let dot = 0;
        for (let i = 0; i < D; i++) dot += W[a * D + i]! * W[b * D + i]!;
        expect(Math.abs(dot - (a === b ? 1 : 0))).toBeLessThanOrEqual(2 ** -22);
      }
    }
    expect(seededRotation(D, D, 7).matrix).toEqual(W);
    expect(seededRotation(D, 16, 7).matrix).toEqual(W.subarray(0, 16 * D));
    expect(seededRotation(D, 16, 8).matrix).not.toEqual(W.subarray(0, 16 * D));
    expect(t.fingerprint).toBe('rotation-7');
  });
});

describe('first-stage queries with a transform', () => {
  it('code a Hamming query as a document and give the asymmetric stage W q; first dims as before', () => {
    const t = randomTransform(16);
    const v = vectors[0]!;
    expect(encodeQuery('hamming', v, 16, quantizer, t)).toEqual({ type: 'hamming', bits: 16, code: codeOf(t, v) });
    expect(encodeQuery('asymmetric', v, 16, quantizer, t)).toEqual(asymmetricQuery(asymmetricVector(t, v)));
    expect(encodeQuery('hamming', v, 16, quantizer, firstDims(D, 16))).toEqual(encodeQuery('hamming', v, 16, quantizer));
    expect(() => encodeQuery('hamming', v, 8, quantizer, t)).toThrow(/16-bit transform for a 8-bit first stage/);
  });
});

describe('codes recomputed from int8 codes', () => {
  const codes = new Int8Array(vectors.length * D);
  vectors.forEach((v, n) => codes.set(int8Of(v), n * D));

  for (const [name, t] of [
    ['first dims', firstDims(D, 24)],
    ['a rotation', seededRotation(D, 32, 1)],
    ['a fitted transform', randomTransform(40)],
  ] as const) {
    it(`are the signs of W(x̂ − μ) where rounding cannot decide otherwise: ${name}`, () => {
      const out = new Uint8Array(vectors.length * (t.bits / 8));
      const coder = int8Coder(t, quantizer);
      expect(coder.kernel).toBe(t.matrix ? 'simd' : 'first-dims');
      coder.encode(codes, vectors.length, out);
      let decided = 0;
      for (let n = 0; n < vectors.length; n++) {
        const c = codes.subarray(n * D, (n + 1) * D);
        for (let j = 0; j < t.bits; j++) {
          // Only a |y| within the coder's rounding (test/helpers/sign-bound.ts) may come out either way.
          const { y, bound } = exactAndBound(t, quantizer, c, j, t.matrix ? 'simd' : 'scalar');
          if (Math.abs(y) <= bound) continue;
          decided++;
          expect(bitOf(out.subarray(n * (t.bits / 8)), j), `document ${n} bit ${j}`).toBe(y > 0 ? 1 : 0);
        }
      }
      expect(decided).toBeGreaterThan(0.99 * vectors.length * t.bits);
    });
  }

  it("differ from the model vector's code only where int8 rounding can cross zero", () => {
    const t = randomTransform(48);
    const out = new Uint8Array(vectors.length * 6);
    int8Coder(t, quantizer).encode(codes, vectors.length, out);
    let differ = 0;
    vectors.forEach((v, n) => {
      const fromModel = codeOf(t, v);
      const yHat = project(t, Float32Array.from(dequantized(codes.subarray(n * D, (n + 1) * D))));
      for (let j = 0; j < t.bits; j++) {
        if (bitOf(fromModel, j) === bitOf(out.subarray(n * 6), j)) continue;
        differ++;
        // |x_i − x̂_i| ≤ step_i / 2 (x lies in its bucket, x̂ is its centre), so |y(x) − y(x̂)| ≤
        // Σ_i |W_ji| · step_i / 2: a bit may differ only where y(x̂) is that close to zero (plus a
        // float32 rounding margin of 1e-6 of the same sum), or within the kernel's own rounding
        // of it (test/helpers/sign-bound.ts).
        let bound = 0;
        for (let i = 0; i < D; i++) bound += (Math.abs(t.matrix![j * D + i]!) * quantizer.steps[i]!) / 2;
        const kernel = exactAndBound(t, quantizer, codes.subarray(n * D, (n + 1) * D), j, 'simd').bound;
        expect(Math.abs(yHat[j]!), `document ${n} bit ${j}`).toBeLessThanOrEqual(bound * (1 + 1e-6) + kernel);
      }
    });
    expect(differ).toBeLessThan(0.05 * vectors.length * t.bits); // rounding crosses zero rarely
  });

  it('refuse a quantizer of another dimension', () => {
    expect(() => int8Coder(firstDims(8, 8), quantizer)).toThrow(/8 dimensions for a model of 48/);
  });
});

describe('a fitted transform artifact', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'qembed-transform-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const t16 = randomTransform(16);
  const t8 = randomTransform(8);
  const write = (manifest: Record<string, unknown>) => {
    writeNpy(path.join(dir, 'mean.npy'), { rows: 1, columns: D, data: t16.mean });
    writeNpy(path.join(dir, 'w16.npy'), { rows: 16, columns: D, data: t16.matrix! });
    writeNpy(path.join(dir, 'w8.npy'), { rows: 8, columns: D, data: t8.matrix! });
    const base = { format: TRANSFORM_FORMAT, method: 'qat', model: null, dimension: D, mean: 'mean.npy', lengths: { '16': 'w16.npy', '8': 'w8.npy' } };
    const m = { ...base, ...manifest };
    let fingerprint = 'fedcba9876543210';
    try {
      fingerprint = transformFingerprint(dir, m as Parameters<typeof transformFingerprint>[1]);
    } catch {
      // a manifest naming files outside the folder: the loader refuses it before the fingerprint
    }
    writeFileSync(path.join(dir, 'transform.json'), JSON.stringify({ fingerprint, ...m }));
    return fingerprint;
  };

  it('is read as written, one code length at a time', () => {
    const fingerprint = write({});
    expect(fingerprint).toMatch(/^[0-9a-f]{16}$/);
    expect(artifactLengths(readTransformManifest(dir))).toEqual([8, 16]);
    const t = loadTransform(dir, 16);
    expect(t).toMatchObject({ method: 'qat', fingerprint, dimension: D, bits: 16 });
    expect(t.matrix).toEqual(t16.matrix);
    expect(t.mean).toEqual(t16.mean);
    for (const v of vectors.slice(0, 20)) expect(codeOf(t, v)).toEqual(codeOf(t16, v));
    expect(loadTransform(dir, 8).matrix).toEqual(t8.matrix);
  });

  it('is refused, by name, when a length is missing or a file does not fit what it declares', () => {
    write({});
    expect(() => loadTransform(dir, 24)).toThrow(/makes 8, 16-bit codes, not 24/);
    write({ lengths: { '16': 'w8.npy' } });
    expect(() => loadTransform(dir, 16)).toThrow(/8 x 48, expected 16 x 48/);
    write({});
    writeNpy(path.join(dir, 'w8.npy'), { rows: 8, columns: D, data: t16.matrix!.subarray(0, 8 * D) }); // changed after writing
    expect(() => loadTransform(dir, 16)).toThrow(/its files have fingerprint [0-9a-f]{16}, transform.json says/);
    write({ fingerprint: '0000000000000000' });
    expect(() => loadTransform(dir, 8)).toThrow(/transform.json says 0000000000000000/);
    write({ dimension: 40 });
    expect(() => loadTransform(dir, 16)).toThrow(/declares 40 dimensions/);
    write({ lengths: { '16': '../w16.npy' } });
    expect(() => loadTransform(dir, 16)).toThrow(/not a file of the transform's folder/);
    write({ format: 'other', method: 'pca', fingerprint: 'XYZ' });
    expect(() => readTransformManifest(dir)).toThrow(/"format" must be .*"fingerprint" must be .*"method" must be/);
    expect(() => readTransformManifest(path.join(dir, 'nowhere'))).toThrow(/no transform.json/);
  });
});
