import { describe, expect, it } from 'vitest';
import { BACKGROUND_BATCH_SIZE, BACKGROUND_EVERY, createBatcher } from '../../src/encoder/batcher.js';
import type { ModelRunner } from '../../src/encoder/model-runner.js';
import type { TokenizedText } from '../../src/encoder/tokenizer.js';

/** A model that records each batch's first token id (the lane tag below) and size. */
function recordingRunner(batches: { tag: number; size: number }[]): ModelRunner {
  return {
    provider: 'cpu',
    warning: undefined,
    alive: () => true,
    async run(request) {
      batches.push({ tag: Number(request.inputIds[0]), size: request.batch });
      await new Promise((r) => setTimeout(r, 1));
      return new Float32Array(request.batch * 4);
    },
    close: async () => {},
  };
}

const texts = (tag: number, n: number): TokenizedText[] => Array.from({ length: n }, () => ({ ids: [tag, 5, 6], typeIds: [0, 0, 0], truncated: false }));

describe('the background lane', () => {
  it('runs when no request waits, in small batches, and gets one batch in every few while requests keep the model busy', async () => {
    const batches: { tag: number; size: number }[] = [];
    const batcher = createBatcher(recordingRunner(batches), { maxBatchTokens: 100_000, maxBatchSize: 4, padId: 0, dimension: 4 });
    const background = batcher.submit(texts(2, 40), 'background');
    const requests = Promise.all(Array.from({ length: 40 }, () => batcher.submit(texts(1, 4))));
    expect(batcher.depth('request')).toBeGreaterThan(0);
    expect(batcher.depth('background')).toBeGreaterThan(0);
    await Promise.all([background, requests]);

    for (const b of batches.filter((x) => x.tag === 2)) expect(b.size).toBeLessThanOrEqual(BACKGROUND_BATCH_SIZE);
    // Once requests wait, a background batch runs only after BACKGROUND_EVERY request batches.
    const firstRequest = batches.findIndex((b) => b.tag === 1);
    const lastRequest = batches.map((b) => b.tag).lastIndexOf(1);
    let run = 0;
    for (const b of batches.slice(firstRequest, lastRequest + 1)) {
      if (b.tag === 1) run++;
      else {
        expect(run).toBeGreaterThanOrEqual(BACKGROUND_EVERY);
        run = 0;
      }
    }
    // …and it does run before the requests are all done: it is never starved.
    expect(batches.slice(firstRequest, lastRequest).some((b) => b.tag === 2)).toBe(true);
  });

  it('yields to requests on another model of the process: both share the CPU', async () => {
    // One timeline for both batchers: which lane of which model ran, in order, and whether a
    // background batch started while a request batch of the other model was running.
    const timeline: { model: string; tag: number; overlapped: boolean }[] = [];
    let runningRequests = 0;
    const runner = (model: string): ModelRunner => ({
      provider: 'cpu',
      warning: undefined,
      alive: () => true,
      async run(request) {
        const tag = Number(request.inputIds[0]);
        timeline.push({ model, tag, overlapped: tag === 2 && runningRequests > 0 });
        if (tag === 1) runningRequests++;
        await new Promise((r) => setTimeout(r, 2));
        if (tag === 1) runningRequests--;
        return new Float32Array(request.batch * 4);
      },
      close: async () => {},
    });
    const options = { maxBatchTokens: 100_000, maxBatchSize: 4, padId: 0, dimension: 4 };
    const served = createBatcher(runner('served'), options);
    const old = createBatcher(runner('old'), options);
    // More background batches (16) than the requests' 40 batches leave room for (40 / 8 = 5):
    // a batcher that yielded only to its own requests would run all 16 beside them.
    const requests = Promise.all(Array.from({ length: 40 }, () => served.submit(texts(1, 4))));
    const background = old.submit(texts(2, 16 * Math.min(options.maxBatchSize, BACKGROUND_BATCH_SIZE)), 'background');
    await Promise.all([requests, background]);
    served.close(new Error('done'));
    old.close(new Error('done'));

    // The other model's background batches wait for BACKGROUND_EVERY request batches at a time…
    const lastRequest = timeline.map((t) => t.tag).lastIndexOf(1);
    let run = 0;
    for (const t of timeline.slice(0, lastRequest + 1)) {
      if (t.tag === 1) run++;
      else {
        expect(run).toBeGreaterThanOrEqual(BACKGROUND_EVERY);
        run = 0;
      }
    }
    // …run beside the requests (the CPU is shared: never starved until they are done), but
    // at most one for every BACKGROUND_EVERY request batches…
    const requestBatches = timeline.filter((t) => t.tag === 1).length;
    const overlapped = timeline.filter((t) => t.overlapped).length;
    expect(overlapped).toBeGreaterThan(0);
    expect(overlapped).toBeLessThanOrEqual(Math.floor(requestBatches / BACKGROUND_EVERY));
    // …and all of it completes.
    expect(timeline.filter((t) => t.tag === 2).length).toBe(16);
  });
});
