/** Copies of the fixture bundle with an edited manifest, for tests of bundle checks and model switching. */
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { computeFingerprint, type Manifest } from '../../src/encoder/bundle.js';
import { FIXTURE_BUNDLE } from './app.js';

/** Rewrites a bundle's manifest fingerprint from its files, as the worker would. */
export function refreshFingerprint(dir: string): string {
  const file = path.join(dir, 'manifest.json');
  const m = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
  const sha = (f: string) => createHash('sha256').update(readFileSync(path.join(dir, f))).digest('hex');
  m.fingerprint = computeFingerprint({
    modelSha256: sha('model.onnx'),
    tokenizerSha256: sha('tokenizer.json'),
    ranges: { min: Float32Array.from(m.calibration.min), max: Float32Array.from(m.calibration.max) },
    dimension: m.dimension,
    maxTokens: m.max_tokens,
    prompts: m.prompts,
  });
  writeFileSync(file, JSON.stringify(m));
  return m.fingerprint;
}

/**
 * A copy of the fixture bundle in `parent` (a new temporary folder by default) with the
 * manifest edited, fingerprinted again unless `refingerprint` is false.
 */
export function bundleCopy(edit: (m: Manifest) => void = () => {}, options: { refingerprint?: boolean; parent?: string; name?: string } = {}): string {
  const parent = options.parent ?? mkdtempSync(path.join(tmpdir(), 'qembed-bundle-'));
  const dir = options.name ? path.join(parent, options.name) : parent;
  cpSync(FIXTURE_BUNDLE, dir, { recursive: true });
  const file = path.join(dir, 'manifest.json');
  const m = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
  edit(m);
  writeFileSync(file, JSON.stringify(m));
  if (options.refingerprint ?? true) refreshFingerprint(dir);
  return dir;
}

/** The fixture's graph with another calibration, in `parent/name`: another fingerprint and other int8 codes. */
export function recalibratedCopy(parent: string, name: string): string {
  return bundleCopy(
    (m) => {
      m.name = name;
      m.calibration.max = m.calibration.max.map((x) => x + 0.05);
    },
    { parent, name },
  );
}
