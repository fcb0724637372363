import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BatchEvent } from '../../src/encoder/batcher.js';
import type { Embedded, Encoder } from '../../src/encoder/encoder.js';
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

  it('concurrent single-text calls waiting for the model are merged into one batch, and each gets its own vector back', async () => {
    // Texts of one token length each, so the padding rule lets all of them share a batch.
    const singles = Array.from({ length: 8 }, (_, i) => `query number ${i}`);
    const long = Array.from({ length: 16 }, (_, i) => `${i} ${'word '.repeat(200)}`); // cut to max_tokens
    expect(new Set((await encoder.embed(singles, { inputType: 'query', truncate: true })).tokens).size).toBe(1);

    // The singles are sent while a blocker (batches of long texts, which they never join: their
    // padding would exceed the bound) keeps the model busy for at least 20 times what one
    // single call takes end to end, both measured here: so they all wait, on any machine.
    const time = async (fn: () => Promise<unknown>) => {
      const t0 = performance.now();
      await fn();
      return performance.now() - t0;
    };
    const singleMs: number[] = [];
    for (let i = 0; i < 5; i++) singleMs.push(await time(() => encoder.embed([singles[i]!], { inputType: 'query', truncate: true })));
    const batchMs: number[] = [];
    for (let i = 0; i < 3; i++) batchMs.push(await time(() => encoder.embed(long, { inputType: 'document', truncate: true })));
    const batches = Math.min(64, 2 + Math.ceil((20 * Math.max(...singleMs)) / Math.min(...batchMs)));

    const events: BatchEvent[] = [];
    let sent: Promise<Embedded>[] | undefined;
    let blocking = false;
    encoder.onBatch((event) => {
      if (!blocking) return;
      events.push(event);
      // After the blocker's first batch: its texts are all queued ahead of the singles.
      sent ??= singles.map((t) => encoder.embed([t], { inputType: 'query', truncate: true }));
    });
    blocking = true;
    await encoder.embed(Array.from({ length: batches }, () => long).flat(), { inputType: 'document', truncate: true });
    const results = await Promise.all(sent!);
    blocking = false;

    const short = events.filter((e) => e.tokens / e.size < 64);
    expect(events.length - short.length).toBe(batches);
    expect(short.map((e) => e.size)).toEqual([singles.length]);
    const together = (await encoder.embed(singles, { inputType: 'query', truncate: true })).vectors;
    results.forEach((r, i) => expect(maxAbsDiff(r.vectors[0]!, together[i]!)).toBeLessThan(1e-5));
  });
});
