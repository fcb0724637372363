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
import { MissingDependencyError, requirePath } from '../helpers/dependencies.js';

const expected = JSON.parse(readFileSync(new URL('../fixtures/bundle-fingerprints.json', import.meta.url), 'utf8')) as { bundles: Record<string, string> };
const hint = 'a folder holding the default bundles; ./scripts/test builds them and sets it';
const modelsDir = requirePath('the bundle fingerprint test', 'TEST_MODELS_DIR', 'dir', hint);
// A models folder without the bundles is a broken set-up, CI or not.
const absent = modelsDir ? Object.keys(expected.bundles).filter((name) => !existsSync(path.join(modelsDir, name, 'manifest.json'))) : [];
if (absent.length > 0) throw new MissingDependencyError(`TEST_MODELS_DIR=${modelsDir} lacks ${absent.join(', ')} (${hint})`);
const available = modelsDir !== undefined;

describe.runIf(available)('the default bundles built on this machine', () => {
  it.each(Object.entries(expected.bundles))('%s has the committed fingerprint', async (name, fingerprint) => {
    const bundle = await loadBundle(path.join(modelsDir!, name));
    expect(bundle.fingerprint, `models/${name} was built with another fingerprint on this machine: the bundle is not reproducible`).toBe(fingerprint);
  });
});
