/**
 * src/quantization/linear-scan.ts: the blocked sums are the sums scoreInt8 takes. Both add the
 * same float64 products in the same (dimension) order, which IEEE 754 makes bit-identical on
 * every machine, so equality is exact here by construction, not one machine's output: exact
 * rankings tie and order as rescoring does.
 */
import { describe, expect, it } from 'vitest';
import { scoreInt8 } from '../../src/quantization/dequantize.js';
import { BLOCK, GROUP, scoreBlock, scoreOne } from '../../src/quantization/linear-scan.js';
import { xorshift32 } from '../helpers/random.js';

const dim = 40;
const next = xorshift32(9);
const docs = Int8Array.from({ length: 150 * dim }, () => (next() & 0xff) - 128);
const weights = Float32Array.from({ length: GROUP * dim }, () => next() / 2 ** 32 - 0.5);
const reference = (q: number, doc: number) => scoreInt8({ weights: weights.subarray(q * dim, (q + 1) * dim), bias: 0 }, docs, doc * dim);

describe('linear scan', () => {
  it('scoreBlock: four queries, every document of a block, odd ends included', () => {
    const scores = new Float64Array(GROUP * BLOCK);
    for (const [start, end] of [[0, BLOCK], [BLOCK, 2 * BLOCK - 1], [140, 150]] as const) {
      scoreBlock(weights, 0, dim, docs, start, end, scores);
      for (let q = 0; q < GROUP; q++) for (let j = start; j < end; j++) expect(scores[q * BLOCK + j - start]).toBe(reference(q, j));
    }
  });

  it('scoreOne: one query, four documents at a time and the rest one by one', () => {
    const scores = new Float64Array(BLOCK);
    for (const [start, end] of [[0, BLOCK], [3, 10], [147, 150], [5, 5]] as const) {
      scoreOne(weights, dim, docs, start, end, scores);
      for (let j = start; j < end; j++) expect(scores[j - start]).toBe(reference(0, j));
    }
  });
});
