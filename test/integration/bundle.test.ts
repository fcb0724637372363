import { existsSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { BundleError, loadBundle, type Manifest } from '../../src/encoder/bundle.js';
import { providerDir } from '../../src/encoder/cuda-diagnosis.mjs';
import { createEncoder } from '../../src/encoder/encoder.js';
import { FIXTURE_BUNDLE } from '../helpers/app.js';
import { bundleCopy as makeCopy } from '../helpers/bundles.js';
import { dependency } from '../helpers/dependencies.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A copy of the fixture bundle with the manifest edited, removed after the test. */
function bundleCopy(edit: (m: Manifest) => void = () => {}, options: { refingerprint?: boolean } = {}): string {
  const dir = makeCopy(edit, options);
  dirs.push(dir);
  return dir;
}

const startEncoder = async (dir: string) => createEncoder(await loadBundle(dir), loadConfig({}, { intraOpThreads: 1 }));

describe('loadBundle', () => {
  it('loads the fixture and recomputes its fingerprint', async () => {
    const b = await loadBundle(FIXTURE_BUNDLE);
    expect(b.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    expect(b.ranges.min).toHaveLength(b.dimension);
  });

  it('names a missing file', async () => {
    const dir = bundleCopy();
    unlinkSync(path.join(dir, 'tokenizer.json'));
    await expect(loadBundle(dir)).rejects.toThrow(/missing tokenizer\.json/);
  });

  it('refuses a manifest that is not JSON', async () => {
    const dir = bundleCopy();
    writeFileSync(path.join(dir, 'manifest.json'), '{ not json');
    await expect(loadBundle(dir)).rejects.toThrow(/not valid JSON/);
  });

  it('refuses an unknown format', async () => {
    await expect(loadBundle(bundleCopy((m) => ((m as { format: string }).format = 'qembed.bundle/v9')))).rejects.toThrow(/format "qembed.bundle\/v9"/);
  });

  it('refuses a dimension that is not a multiple of 8', async () => {
    await expect(loadBundle(bundleCopy((m) => (m.dimension = 30)))).rejects.toThrow(/multiple of 8/);
  });

  it('refuses calibration ranges of the wrong length or empty', async () => {
    await expect(loadBundle(bundleCopy((m) => m.calibration.min.pop()))).rejects.toThrow(/calibration\.min/);
    await expect(loadBundle(bundleCopy((m) => (m.calibration.max[3] = m.calibration.min[3]!)))).rejects.toThrow(/dimension 3 is empty/);
  });

  it('refuses a bundle without calibration', async () => {
    const noCalibration = bundleCopy((m) => delete (m as Partial<Manifest>).calibration, { refingerprint: false });
    await expect(loadBundle(noCalibration)).rejects.toThrow(/calibration.*missing/);
  });

  it('refuses files that changed after the manifest was written', async () => {
    const dir = bundleCopy();
    const tok = path.join(dir, 'tokenizer.json');
    writeFileSync(tok, readFileSync(tok, 'utf8').replace('[UNK]', '[UNKNOWN]'));
    await expect(loadBundle(dir)).rejects.toThrow(/fingerprint mismatch/);
    await expect(loadBundle(bundleCopy((m) => (m.calibration.max[0]! += 0.01), { refingerprint: false }))).rejects.toThrow(BundleError);
  });
});

describe('the model graph is checked against the manifest at start', () => {
  it('refuses declared inputs the graph does not take', async () => {
    const dir = bundleCopy((m) => (m.onnx.inputs = ['input_ids', 'attention_mask']));
    await expect(startEncoder(dir)).rejects.toThrow(/takes inputs \[attention_mask, input_ids, token_type_ids\]/);
  });

  it('refuses an output the graph does not have', async () => {
    await expect(startEncoder(bundleCopy((m) => (m.onnx.output = 'pooled')))).rejects.toThrow(/no output "pooled"/);
  });

  it('refuses a dimension the graph does not produce', async () => {
    const dir = bundleCopy((m) => {
      m.dimension = 64;
      m.calibration.min = [...m.calibration.min, ...m.calibration.min];
      m.calibration.max = [...m.calibration.max, ...m.calibration.max];
    });
    await expect(startEncoder(dir)).rejects.toThrow(/64/);
  });

  // With the provider libraries installed in node_modules (scripts/install-cuda-providers), this
  // case cannot arise here: test/integration/cuda-providers.test.ts covers the installed one.
  const notInstalled = dependency(
    'the test of CUDA without its provider libraries',
    existsSync(path.join(providerDir(), 'libonnxruntime_providers_cuda.so')) ? 'the CUDA provider libraries are installed in node_modules here' : undefined,
  );
  it.runIf(notInstalled)(
    'refuses CUDA when its provider libraries are not installed, unless fallback is allowed',
    async () => {
      const bundle = await loadBundle(FIXTURE_BUNDLE);
      await expect(createEncoder(bundle, loadConfig({}, { executionProvider: 'cuda', intraOpThreads: 1 }))).rejects.toThrow(
        /CUDA provider libraries are not installed .*scripts\/install-cuda-providers.*QEMBED_CUDA_FALLBACK=true/s,
      );
      const encoder = await createEncoder(bundle, loadConfig({}, { executionProvider: 'cuda', cudaFallback: true, intraOpThreads: 1 }));
      try {
        expect(encoder.provider).toBe('cpu');
        expect(encoder.warning).toMatch(/not installed.*falling back to the CPU/s);
      } finally {
        await encoder.close();
      }
    },
  );
});
