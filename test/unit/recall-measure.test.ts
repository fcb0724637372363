/** The recall bench's measurement (bench/recall/measure.ts, exact.ts) on examples small enough to know the answer by hand. */
import { describe, expect, it } from 'vitest';
import { exactTopK } from '../../bench/recall/exact.js';
import { keptShare, measureRecall, overlap, positionsIn, rescoredTop, seededPermutation, takeRows } from '../../bench/recall/measure.js';
import { NOT_FOUND } from '../../src/quality/estimate.js';
import { TopK } from '../../src/quality/exact.js';
import { foldQuery, scoreInt8 } from '../../src/quantization/dequantize.js';
import { createQuantizer } from '../../src/quantization/quantize.js';
import { xorshift32 } from '../helpers/random.js';

/** Ranges of [-1, 1] in every dimension: int8 buckets of 2/255. */
const unitQuantizer = (dimension: number) => createQuantizer({ min: new Float32Array(dimension).fill(-1), max: new Float32Array(dimension).fill(1) });

function randomMatrix(rows: number, dimension: number, seed: number): Float32Array {
  const next = xorshift32(seed);
  return Float32Array.from({ length: rows * dimension }, () => next() / 2 ** 31 - 1);
}

describe('seededPermutation and takeRows', () => {
  it('is a permutation fixed by its seed', () => {
    const a = seededPermutation(1000, 5);
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(seededPermutation(1000, 5)).toEqual(a);
    expect(seededPermutation(1000, 6)).not.toEqual(a);
  });

  it('takes rows in the order given', () => {
    const m = Float32Array.from([0, 1, 10, 11, 20, 21]);
    expect(takeRows(m, 2, [2, 0])).toEqual(Float32Array.from([20, 21, 0, 1]));
  });
});

describe('positions, shares and rescoring', () => {
  it('finds the exact top in the first stage order, NOT_FOUND when absent', () => {
    const positions = positionsIn([7, 3, 9, 1], [1, 3, 5]);
    expect([...positions]).toEqual([3, 1, NOT_FOUND]);
    expect(keptShare(positions, 2)).toBeCloseTo(1 / 3, 12);
    expect(keptShare(positions, 4)).toBeCloseTo(2 / 3, 12);
    expect(overlap([1, 2, 3], [3, 4])).toBe(0.5);
  });

  it('rescores the first `count` candidates by score, then first-stage distance, then row (src/search/query.ts)', () => {
    const rows = [10, 11, 12, 13, 14];
    const distances = [1, 3, 2, 2, 0];
    const scores = [0.5, 0.9, 0.9, 0.9, 2];
    // 14 is past count; of the three at 0.9, distance 2 beats 3, and row 12 beats 13 at equal distance.
    expect(rescoredTop(rows, distances, scores, 4, 3)).toEqual([12, 13, 11]);
    expect(rescoredTop(rows, distances, scores, 5, 2)).toEqual([14, 12]);
  });
});

describe('exactTopK', () => {
  const dim = 24;
  const docs = randomMatrix(301, dim, 3); // odd: a block's last document alone
  const queries = randomMatrix(7, dim, 4); // not a whole group of 4

  it('ranks by float32 dot product as a brute force does, for every nested size', () => {
    const tops = exactTopK(docs, dim, { weights: queries }, [5, 64, 301], 10);
    for (const [s, size] of [5, 64, 301].entries()) {
      for (let q = 0; q < 7; q++) {
        const scores = Array.from({ length: size }, (_, j) => {
          let sum = 0;
          for (let i = 0; i < dim; i++) sum += queries[q * dim + i]! * docs[j * dim + i]!;
          return sum;
        });
        const expected = scores.map((_, j) => j).sort((a, b) => scores[b]! - scores[a]! || a - b).slice(0, 10);
        expect(tops[s]![q]).toEqual(expected);
      }
    }
  });

  it('scores int8 codes bit for bit as scoreInt8, so it ranks as the service exact scan (TopK over scoreInt8)', () => {
    const quantizer = unitQuantizer(dim);
    const codes = new Int8Array(301 * dim);
    for (let j = 0; j < 301; j++) quantizer.toInt8(docs.subarray(j * dim, (j + 1) * dim), codes.subarray(j * dim, (j + 1) * dim));
    const folded = Array.from({ length: 7 }, (_, q) => foldQuery(queries.subarray(q * dim, (q + 1) * dim), quantizer));
    const weights = new Float32Array(7 * dim);
    folded.forEach((f, q) => weights.set(f.weights, q * dim));
    const [tops] = exactTopK(codes, dim, { weights, bias: Float64Array.from(folded, (f) => f.bias) }, [301], 10);
    for (let q = 0; q < 7; q++) {
      const reference = new TopK(10);
      for (let j = 0; j < 301; j++) reference.offer(j, scoreInt8(folded[q]!, codes, j * dim));
      expect(tops![q]).toEqual(reference.rowids);
    }
  });

  it('refuses sizes out of order or past the documents', () => {
    expect(() => exactTopK(docs, dim, { weights: queries }, [64, 5], 10)).toThrow(/ascend/);
    expect(() => exactTopK(docs, dim, { weights: queries }, [302], 10)).toThrow(/at most 301/);
  });
});

describe('measureRecall on a hand-made example', () => {
  // 8 dimensions, the query is the first axis: every document's exact score (float32 and int8
  // alike: its buckets are 2/255 wide, the scores 0.04 apart) is its first coordinate, so the
  // exact top-10 of the 20 documents is rows 0-9. The query's sign bits are 1000 0000.
  //   rows 0-4:   1 + seven negatives: Hamming distance 0
  //   rows 5-9:   1 + three positives: distance 3
  //   rows 10-19: 1 + one positive:    distance 1
  // Hamming keeps rows 0-4 and 10-14 in its 10 candidates at m = 1: 5 of the top-10. The
  // asymmetric query's levels are (7, 0, …, 0), so every document scores the same and ties keep
  // rows 0-9: all of it. At m = 2 every document is a candidate.
  const dim = 8;
  const documents = new Float32Array(20 * dim);
  for (let j = 0; j < 20; j++) {
    const positives = j < 5 ? 0 : j < 10 ? 3 : 1;
    documents.set([0.9 - 0.04 * j, ...Array.from({ length: 7 }, (_, i) => (i < positives ? 0.1 : -0.1))], j * dim);
  }
  const query = Float32Array.from([1, 0, 0, 0, 0, 0, 0, 0]);
  const { rows, queries } = measureRecall(
    { documents, queries: query, quantizer: unitQuantizer(dim) },
    { sizes: [10, 20], bits: [8], stages: ['hamming', 'asymmetric'], multipliers: [1, 2] },
  );
  const row = (documents: number, stage: string, multiplier: number) => rows.find((r) => r.documents === documents && r.stage === stage && r.multiplier === multiplier)!;

  it('measures one query at every size, stage and multiplier', () => {
    expect(queries).toBe(1);
    expect(rows).toHaveLength(2 * 2 * 2);
  });

  it('Hamming keeps half of the top-10 among 10 candidates, all of it among 20', () => {
    const all = { float32: 1, int8: 1 };
    expect(row(20, 'hamming', 1)).toMatchObject({ firstStage: { float32: 0.5, int8: 0.5 }, endToEnd: { float32: 0.5, int8: 0.5 } });
    expect(row(20, 'hamming', 2)).toMatchObject({ firstStage: all, endToEnd: all });
  });

  it('the asymmetric first stage, blind to the dimensions the query leaves at 0, keeps all of it', () => {
    expect(row(20, 'asymmetric', 1)).toMatchObject({ firstStage: { float32: 1, int8: 1 }, endToEnd: { float32: 1, int8: 1 } });
  });

  it('with 10 documents, every document is a candidate', () => {
    for (const stage of ['hamming', 'asymmetric']) expect(row(10, stage, 1)).toMatchObject({ firstStage: { float32: 1, int8: 1 }, endToEnd: { float32: 1, int8: 1 } });
  });
});
