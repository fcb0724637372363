/**
 * The default bundles are reproducible: `python -m qembed_worker export --model all-minilm-l6-v2`
 * and `quantize-weights` write the same fingerprints on every x86-64 machine (calibration and
 * SmoothQuant statistics are computed in float64, the graph is written without arithmetic on
 * the weights; docs/model-bundle.md). The committed values were produced on an AMD EPYC (Zen 5,
 * AVX-512 + VNNI) and again under qemu-x86_64 -cpu Haswell (AVX2 only). scripts/test builds the
 * bundles and points TEST_MODELS_DIR at them; without it this test is skipped with a notice, and
 * under CI it fails instead. When a pinned worker dependency changes on purpose, the bundles
 * change too: rebuild them and update test/fixtures/bundle-fingerprints.json.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadBundle } from '../../src/encoder/bundle.js';

const modelsDir = process.env.TEST_MODELS_DIR;
const expected = JSON.parse(readFileSync(new URL('../fixtures/bundle-fingerprints.json', import.meta.url), 'utf8')) as { bundles: Record<string, string> };
const available = Boolean(modelsDir && Object.keys(expected.bundles).every((name) => existsSync(path.join(modelsDir, name, 'manifest.json'))));
if (!available) {
  const notice = 'bundle fingerprint test skipped: set TEST_MODELS_DIR to a folder holding the default bundles (scripts/test does)';
  if (process.env.CI) throw new Error(`${notice}; CI must run it`);
  console.warn(notice);
}

describe.runIf(available)('the default bundles built on this machine', () => {
  it.each(Object.entries(expected.bundles))('%s has the committed fingerprint', async (name, fingerprint) => {
    const bundle = await loadBundle(path.join(modelsDir!, name));
    expect(bundle.fingerprint, `models/${name} was built with another fingerprint on this machine: the bundle is not reproducible`).toBe(fingerprint);
  });
});
