/**
 * Parity: onnxruntime-node running a real bundle agrees with sentence-transformers running the
 * original model (cosine ≥ 0.9999 per text). scripts/test writes the reference embeddings with
 * the worker (`python -m qembed_worker embed`) and points QEMBED_PARITY_* at them; without them
 * (a plain `npx vitest`) this test is skipped with a notice, and under CI it fails instead.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { loadBundle } from '../../src/encoder/bundle.js';
import { createEncoder, type Encoder } from '../../src/encoder/encoder.js';
import { dependency, pathProblem } from '../helpers/dependencies.js';

const hint = 'a bundle and the reference embeddings the worker wrote for it; ./scripts/test sets both';
const available = dependency('the parity test', pathProblem('TEST_PARITY_BUNDLE', 'dir', hint) ?? pathProblem('TEST_PARITY_DIR', 'dir', hint));
const bundleDir = process.env.TEST_PARITY_BUNDLE;
const referenceDir = process.env.TEST_PARITY_DIR;

const texts = JSON.parse(readFileSync(new URL('../fixtures/parity-texts.json', import.meta.url), 'utf8')) as string[];

const cosine = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! ** 2;
    nb += b[i]! ** 2;
  }
  return dot / Math.sqrt(na * nb);
};

describe.runIf(available)('parity with sentence-transformers', () => {
  let encoder: Encoder;
  beforeAll(async () => {
    encoder = await createEncoder(await loadBundle(bundleDir!), loadConfig({}));
  });
  afterAll(async () => encoder?.close());

  it('covers at least 50 varied texts, some past the max tokens', async () => {
    expect(texts.length).toBeGreaterThanOrEqual(50);
    const { truncated } = await encoder.embed(texts, { inputType: 'document', truncate: true });
    expect(truncated.length).toBeGreaterThan(0);
  });

  for (const inputType of ['document', 'query'] as const) {
    it(`${inputType}s: cosine ≥ 0.9999 for every text`, async () => {
      const file = path.join(referenceDir!, `${encoder.fingerprint}-${inputType}.json`);
      const reference = JSON.parse(readFileSync(file, 'utf8')) as { fingerprint: string; embeddings: number[][] };
      expect(reference.fingerprint).toBe(encoder.fingerprint);
      expect(reference.embeddings).toHaveLength(texts.length);
      const { vectors } = await encoder.embed(texts, { inputType, truncate: true });
      const cosines = vectors.map((v, i) => cosine(v, reference.embeddings[i]!));
      const worst = Math.min(...cosines);
      console.log(`parity (${inputType} texts: ${texts.length}): min cosine ${worst.toFixed(9)}`);
      cosines.forEach((c, i) => expect(c, `text ${i}: ${JSON.stringify(texts[i]!.slice(0, 60))}`).toBeGreaterThanOrEqual(0.9999));
    });
  }
});
