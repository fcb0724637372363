import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Encoder } from '../../src/encoder/encoder.js';
import { createTestEncoder } from '../helpers/app.js';

let encoder: Encoder;
beforeAll(async () => {
  encoder = await createTestEncoder({ maxBatchSize: 16, maxBatchTokens: 4096 });
});
afterAll(async () => encoder.close());

const texts = [
  'a',
  'short query',
  'binary quantization keeps one bit per dimension',
  'Int8 rescoring recovers most of the ranking quality lost by the binary first stage, at a quarter of the float32 memory.',
  'Ünïcödé and 中文 and emoji 🙂 in one text',
  'def dot(a, b):\n    return sum(x * y for x, y in zip(a, b))',
  'word '.repeat(60),
  'the quick brown fox jumps over the lazy dog',
];

const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);

describe('batching never changes results', () => {
  it('a text embeds the same alone and inside a batch of mixed lengths', async () => {
    const alone: Float32Array[] = [];
    for (const text of texts) alone.push((await encoder.embed([text], { inputType: 'document', truncate: true })).vectors[0]!);
    const batched = (await encoder.embed(texts, { inputType: 'document', truncate: true })).vectors;
    texts.forEach((_, i) => {
      expect(maxAbsDiff(alone[i]!, batched[i]!)).toBeLessThan(1e-5);
      expect(Array.from(encoder.quantizer.toUbinary(batched[i]!))).toEqual(Array.from(encoder.quantizer.toUbinary(alone[i]!)));
      expect(Array.from(encoder.quantizer.toInt8(batched[i]!))).toEqual(Array.from(encoder.quantizer.toInt8(alone[i]!)));
    });
  });

  it('concurrent single-text calls are merged into batches and each gets its own vector back', async () => {
    const before = encoder.batchStats().batches;
    const results = await Promise.all(texts.map((t) => encoder.embed([t], { inputType: 'query', truncate: true })));
    const batches = encoder.batchStats().batches - before;
    expect(batches).toBeLessThan(texts.length);
    const together = (await encoder.embed(texts, { inputType: 'query', truncate: true })).vectors;
    results.forEach((r, i) => expect(maxAbsDiff(r.vectors[0]!, together[i]!)).toBeLessThan(1e-5));
  });
});
