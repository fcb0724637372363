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

  it('quantizes one vector the same alone as any batch would: ranges are fixed', () => {
    const v = Float32Array.from([0.5, -0.5, 0.25, 1, 0, 1.5, -1.5, 2]);
    expect(Array.from(q.toInt8(v))).toEqual(Array.from(q.toInt8(Float32Array.from(v))));
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
