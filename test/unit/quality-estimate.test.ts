/** The recall estimate, the multiplier auto chooses, and the query sample (src/quality/). */
import { describe, expect, it } from 'vitest';
import { CONFIDENCE_Z, chooseMultiplier, estimateRecall, MULTIPLIER_MAX, NOT_FOUND, UNMEASURED_MULTIPLIER } from '../../src/quality/estimate.js';
import { emptySample, offer, parseSample, serializeSample, storedQueryCount } from '../../src/quality/sample.js';
import { xorshift32 } from '../helpers/random.js';

const positions = (...p: number[]) => Uint16Array.from(p);

describe('estimateRecall', () => {
  it('is the mean share of each query’s exact top 10 within 10·m positions', () => {
    // Query a finds 10 of 10 within 10 positions; query b finds 5 within 10, 8 within 20, all within 200 but one never.
    const a = positions(0, 1, 2, 3, 4, 5, 6, 7, 8, 9);
    const b = positions(0, 2, 4, 6, 8, 12, 14, 18, 150, NOT_FOUND);
    const e = estimateRecall([a, b]);
    expect(e).toHaveLength(MULTIPLIER_MAX);
    expect(e.slice(0, 2).map((r) => r.recall)).toEqual([(1 + 0.5) / 2, (1 + 0.8) / 2]);
    expect(e[14]!.recall).toBe((1 + 0.8) / 2); // position 150 counts from m = 16
    expect(e[15]!.recall).toBe((1 + 0.9) / 2);
    expect(e[19]!.recall).toBe((1 + 0.9) / 2);
    expect(e[MULTIPLIER_MAX - 1]!.recall).toBe((1 + 0.9) / 2); // NOT_FOUND is beyond every multiplier
    // A position just inside the measured depth counts at the largest multiplier only.
    const deep = estimateRecall([positions(10 * MULTIPLIER_MAX - 1)]);
    expect([deep[MULTIPLIER_MAX - 2]!.recall, deep[MULTIPLIER_MAX - 1]!.recall]).toEqual([0, 1]);
  });

  it('equals the recall computed query by query, at every multiplier, on random positions', () => {
    const next = xorshift32(5);
    // 300 queries, lengths 1 to 10, positions anywhere in the measured depth or not found.
    const queries = Array.from({ length: 300 }, () =>
      Uint16Array.from({ length: 1 + (next() % 10) }, () => (next() % 8 === 0 ? NOT_FOUND : next() % (10 * MULTIPLIER_MAX))),
    );
    const e = estimateRecall(queries);
    for (const m of [1, 2, 7, 100, 999, MULTIPLIER_MAX]) {
      const perQuery = queries.map((p) => p.filter((position) => position < 10 * m).length / p.length);
      const mean = perQuery.reduce((a, b) => a + b, 0) / perQuery.length;
      // Both sides are means of 300 fractions summed in different orders: they differ by a few
      // units in the last place of a double (~1e-16 relative), far inside 1e-12.
      expect(e[m - 1]!.recall).toBeCloseTo(mean, 12);
    }
  });

  it('leaves out queries without exact documents, and counts a short top (a tiny collection) over its own length', () => {
    expect(estimateRecall([])).toEqual([]);
    expect(estimateRecall([positions()])).toEqual([]);
    expect(estimateRecall([positions(0, 15), positions()])[0]!.recall).toBe(0.5);
  });

  it('gives an interval that holds the mean and narrows as queries grow, never to nothing', () => {
    const perfect = (n: number) => Array.from({ length: n }, () => positions(0, 1, 2, 3, 4, 5, 6, 7, 8, 9));
    const at50 = estimateRecall(perfect(50))[0]!;
    const at500 = estimateRecall(perfect(500))[0]!;
    expect(at50.recall).toBe(1);
    expect(at50.high).toBe(1);
    // 1 − CONFIDENCE_Z·√(p̃(1 − p̃)/10/n), p̃ = (10n + 2)/(10n + 4): the floor of the spread (estimate.ts).
    const bound = (n: number) => {
      const p = (10 * n + 2) / (10 * n + 4);
      return 1 - CONFIDENCE_Z * Math.sqrt((p * (1 - p)) / 10 / n);
    };
    expect(at50.low).toBeCloseTo(bound(50), 12);
    expect(at500.low).toBeCloseTo(bound(500), 12);
    expect(at50.low).toBeLessThan(at500.low);
    const mixed = estimateRecall([positions(0, 1, 2, 3, 4, 5, 6, 7, 8, 9), positions(0, 1, 2, 3, 4, 50, 60, 70, 80, 90)])[0]!;
    expect(mixed.low).toBeLessThan(mixed.recall);
    expect(mixed.high).toBeGreaterThan(mixed.recall);
  });
});

describe('chooseMultiplier', () => {
  const rising = [0.5, 0.8, 0.95, 0.985, 0.992, 0.999].map((low, i) => ({ multiplier: i + 1, recall: low + 0.001, low, high: 1 }));

  it('takes the smallest multiplier whose lower bound reaches the target', () => {
    expect(chooseMultiplier(rising, 0.99)).toMatchObject({ multiplier: 5, targetMet: true });
    expect(chooseMultiplier(rising, 0.95)).toMatchObject({ multiplier: 3, targetMet: true });
    expect(chooseMultiplier(rising, 0.1)).toMatchObject({ multiplier: 1, targetMet: true });
  });

  it('takes the most it may when none does, and the default before any measurement', () => {
    expect(chooseMultiplier(rising, 0.9999)).toMatchObject({ multiplier: MULTIPLIER_MAX, targetMet: false });
    expect(chooseMultiplier(rising, 0.99, 4)).toMatchObject({ multiplier: 4, targetMet: false, estimate: rising[3] });
    expect(chooseMultiplier([], 0.99)).toEqual({ multiplier: UNMEASURED_MULTIPLIER, estimate: null, targetMet: false });
    expect(chooseMultiplier([], 0.99, 2).multiplier).toBe(2);
  });
});

describe('the query sample', () => {
  it('keeps at most its size, every query with the same chance', () => {
    const next = xorshift32(5);
    const random = () => next() / 4294967296;
    const kept = new Array<number>(1000).fill(0);
    for (let round = 0; round < 200; round++) {
      const s = emptySample();
      for (let i = 0; i < 1000; i++) offer(s, Float32Array.of(i), 100, random);
      expect(s.queries).toHaveLength(100);
      expect(s.seen).toBe(1000);
      for (const q of s.queries) kept[q.vector[0]!]!++;
    }
    // Each query is kept with probability 0.1: 20 of 200 rounds on average; the first and the
    // last hundred alike (a binomial mean over 100 queries × 200 rounds has sd 0.3).
    const mean = (from: number) => kept.slice(from, from + 100).reduce((a, b) => a + b, 0) / 100;
    expect(Math.abs(mean(0) - 20)).toBeLessThan(1.5);
    expect(Math.abs(mean(900) - 20)).toBeLessThan(1.5);
  });

  it('round-trips through its stored form, and a stored sample of another dimension is dropped', () => {
    const s = emptySample();
    offer(s, Float32Array.of(0.25, -1), 10);
    s.queries[0]!.measurement = { positions: { hamming: positions(0, 3), asymmetric: positions(1, NOT_FOUND) }, fingerprint: 'f', documents: 7, generation: 3, at: 1234 };
    s.documents.push({ vector: Float32Array.of(1, 2), self: 9 });
    const text = serializeSample(s, 2);
    expect(parseSample(text, 2, 10)).toEqual(s);
    expect(parseSample(text, 3, 10)).toEqual(emptySample());
    expect(parseSample('not json', 2, 10)).toEqual(emptySample());
    expect(parseSample(text, 2, 0).queries).toEqual([]);
  });

  it('says how many served queries a stored sample holds from its head alone', () => {
    const s = emptySample();
    for (let i = 0; i < 7; i++) offer(s, Float32Array.of(i, 1), 10);
    const text = serializeSample(s, 2);
    expect(storedQueryCount(text)).toBe(7);
    expect(storedQueryCount(undefined)).toBe(0);
    expect(storedQueryCount('not json')).toBe(0);
    expect(storedQueryCount(text.replace(/^\{"version":\d+/, '{"version":2'))).toBe(0); // another format: dropped when read
  });
});
