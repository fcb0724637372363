import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { bytesPerVector, createQuantizer, type Precision } from '../../src/quantization/quantize.js';
import { serializeVector } from '../../src/quantization/serialize.js';

interface GoldenCase {
  name: string;
  dimension: number;
  clamped: boolean;
  min: number[];
  max: number[];
  embeddings: number[][];
  int8: number[][];
  uint8: number[][];
  binary: number[][];
  ubinary: number[][];
}

const golden = JSON.parse(readFileSync(new URL('../fixtures/quantization-golden.json', import.meta.url), 'utf8')) as {
  cases: GoldenCase[];
};

describe('quantization matches sentence-transformers quantize_embeddings byte for byte', () => {
  it('has golden cases for every edge the generator covers', () => {
    expect(golden.cases.length).toBeGreaterThanOrEqual(5);
    expect(golden.cases.some((c) => c.clamped)).toBe(true);
    expect(golden.cases.some((c) => c.dimension % 8 !== 0)).toBe(true);
  });

  for (const c of golden.cases) {
    describe(c.name, () => {
      const quantizer = createQuantizer({ min: Float32Array.from(c.min), max: Float32Array.from(c.max) });
      for (const precision of ['int8', 'uint8', 'binary', 'ubinary'] as Precision[]) {
        it(precision, () => {
          c.embeddings.forEach((row, i) => {
            const out = quantizer.quantize(Float32Array.from(row), precision);
            expect(Array.from(out), `row ${i}`).toEqual(c[precision as 'int8'][i]);
            expect(out.byteLength).toBe(bytesPerVector(precision, c.dimension));
          });
        });
      }
    });
  }
});

describe('quantizer', () => {
  const q = createQuantizer({ min: Float32Array.from([-1, -1, 0, 0, -2, -2, -2, -2]), max: Float32Array.from([1, 1, 1, 1, 2, 2, 2, 2]) });

  it('quantizes with the fixed ranges, whatever else it quantized before', () => {
    const v = Float32Array.from([0.5, -0.5, 0.25, 0.9, 0, 1.5, -1.5, 1.9]);
    // sentence-transformers' int8: floor((x - min) / ((max - min) / 255)), clipped to [0, 255],
    // minus 128; the values sit well inside their buckets, so float rounding cannot move them.
    const min = [-1, -1, 0, 0, -2, -2, -2, -2];
    const max = [1, 1, 1, 1, 2, 2, 2, 2];
    const expected = Array.from(v, (x, i) => Math.min(255, Math.max(0, Math.floor((x - min[i]!) / ((max[i]! - min[i]!) / 255)))) - 128);
    expect(expected).toEqual([63, -65, -65, 101, -1, 95, -97, 120]);
    expect(Array.from(q.toInt8(v))).toEqual(expected);
    q.toInt8(Float32Array.from([9, -9, 9, -9, 9, -9, 9, -9])); // an outlier elsewhere changes nothing
    expect(Array.from(q.toInt8(v))).toEqual(expected);
  });

  it('clamps values outside the calibration range', () => {
    const above = q.toInt8(Float32Array.from([5, 5, 5, 5, 5, 5, 5, 5]));
    const below = q.toInt8(Float32Array.from([-5, -5, -5, -5, -5, -5, -5, -5]));
    expect(Math.min(...above)).toBe(127);
    expect(Math.max(...below)).toBe(-128);
  });

  it('packs the first dimension into the most significant bit', () => {
    const v = Float32Array.from([1, -1, -1, -1, -1, -1, -1, 1]);
    expect(Array.from(q.toUbinary(v))).toEqual([0b10000001]);
    expect(Array.from(q.toBinary(v))).toEqual([0b10000001 - 128]);
  });

  it('uses a step of 1 where a range is empty, as sentence-transformers does', () => {
    const z = createQuantizer({ min: Float32Array.from([0, 1]), max: Float32Array.from([1, 1]) });
    expect(z.steps[1]).toBe(1);
    expect(Array.from(z.toUint8(Float32Array.from([0.5, 3])))).toEqual([127, 2]);
  });

  it('refuses vectors of the wrong dimension', () => {
    expect(() => q.toInt8(new Float32Array(7))).toThrow(/expected 8/);
  });
});

describe('serializeVector', () => {
  it('writes float32 as little-endian base64 of the exact bytes', () => {
    const v = Float32Array.from([1, -2.5]);
    const b = Buffer.from(serializeVector(v, 'base64') as string, 'base64');
    expect(b.readFloatLE(0)).toBe(1);
    expect(b.readFloatLE(4)).toBe(-2.5);
  });

  it('writes int8 codes as their two-complement bytes', () => {
    const b = Buffer.from(serializeVector(Int8Array.from([-128, -1, 0, 127]), 'base64') as string, 'base64');
    expect(Array.from(b)).toEqual([128, 255, 0, 127]);
  });
});
