import { describe, expect, it } from 'vitest';
import { asymmetricCosine, asymmetricQuery, asymmetricScorer, quantizeQuery4bit } from '../../src/first-stage/asymmetric.js';
import { createBinaryIndex } from '../../src/first-stage/binary-index.js';
import { encodeQuery, similarity } from '../../src/first-stage/query.js';

function random(seed: number) {
  return () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

describe('4-bit query quantization', () => {
  it('maps the largest magnitude to ±7 and keeps signs', () => {
    expect(Array.from(quantizeQuery4bit(Float32Array.from([1, -0.6, 0.07, -1, 0])))).toEqual([7, -4, 0, -7, 0]);
  });

  it('scores a document as the dot product of the levels with its ±1 signs, up to a constant', () => {
    const q = Float32Array.from([0.9, -0.3, 0.2, -0.8, 0.1, 0.4, -0.6, 0.5]);
    const levels = quantizeQuery4bit(q);
    const code = Uint8Array.from([0b10110010]);
    const signs = [1, -1, 1, 1, -1, -1, 1, -1];
    const dot = signs.reduce((a, s, i) => a + s * levels[i]!, 0);
    const sum = levels.reduce((a, b) => a + b, 0);
    expect(2 * asymmetricScorer(q).score(code, 0) - sum).toBe(dot);
    const norm = Math.sqrt(levels.reduce((a, b) => a + b * b, 0) * 8);
    expect(asymmetricCosine(q)(7 * 8 - asymmetricScorer(q).score(code, 0))).toBeCloseTo(dot / norm, 12);
  });
});

describe('the asymmetric WebAssembly scan', () => {
  for (const dim of [384, 32, 24, 72]) {
    it(`ranks exactly as the reference scorer at ${dim} dimensions, over all documents and a filter`, () => {
      const rand = random(dim);
      const bytes = dim / 8;
      const n = 2000;
      const codes = new Uint8Array(n * bytes).map(() => Math.floor(rand() * 256));
      const index = createBinaryIndex(bytes, n, Array.from({ length: n }, (_, i) => [i + 1, codes.subarray(i * bytes, (i + 1) * bytes)] as [number, Uint8Array]));
      const q = Float32Array.from({ length: dim }, () => rand() * 2 - 1);
      const scorer = asymmetricScorer(q);
      const reference = Array.from({ length: n }, (_, i) => ({ rowid: i + 1, s: scorer.score(codes, i * bytes) })).sort((a, b) => b.s - a.s || a.rowid - b.rowid);
      const got = index.search(asymmetricQuery(q), 40);
      expect(got.rowids).toEqual(reference.slice(0, 40).map((r) => r.rowid));
      expect(got.distances).toEqual(reference.slice(0, 40).map((r) => 7 * dim - r.s));
      const filter = [5, 17, 300, 1999];
      const filtered = index.search(asymmetricQuery(q), 3, filter);
      expect(filtered.rowids).toEqual(reference.filter((r) => filter.includes(r.rowid)).slice(0, 3).map((r) => r.rowid));
    });
  }
});

describe('the asymmetric query object', () => {
  it('holds the first `bits` dimensions, scores a distance as asymmetricCosine does, and fits only codes of its length', () => {
    const rand = random(5);
    const v = Float32Array.from({ length: 64 }, () => rand() * 2 - 1);
    const signsUnused = { toUbinary: (): Uint8Array => expect.fail('an asymmetric query needs no signs') };
    const q = encodeQuery('asymmetric', v, 32, signsUnused);
    expect(q).toMatchObject({ type: 'asymmetric', bits: 32 });
    for (const d of [0, 100, 14 * 32]) expect(similarity(q)(d)).toBe(asymmetricCosine(v.subarray(0, 32))(d));
    expect(() => createBinaryIndex(8).search(q, 1)).toThrow(/32 bits for codes of 64/);
    expect(createBinaryIndex(4).search(q, 1).rowids).toEqual([]);
  });
});
