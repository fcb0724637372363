/**
 * Loading a model bundle (docs/model-bundle.md): its files, its manifest (read and checked by
 * manifest.ts) and its fingerprint recomputed from the files, so that a bundle changed after
 * the worker wrote it stops the service with a message that says what is wrong.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { BUNDLE_FORMAT, type InputType, type Manifest } from '../contracts/manifest.js';
import type { CalibrationRanges } from '../quantization/quantize.js';
import { BundleError, MANIFEST_FILE, readManifest } from './manifest.js';

export { BUNDLE_FORMAT, INPUT_TYPES, type InputType, type Manifest, POOLINGS } from '../contracts/manifest.js';
export { BundleError, supportedCodeBits, validateManifest } from './manifest.js';

/** Whether `model` names this bundle: its fingerprint or its manifest name (what requests may send). */
export const namesBundle = (bundle: Bundle, model: string): boolean => model === bundle.fingerprint || model === bundle.manifest.name;

export interface Bundle {
  readonly dir: string;
  readonly manifest: Manifest;
  readonly fingerprint: string;
  readonly dimension: number;
  readonly ranges: CalibrationRanges;
  readonly modelPath: string;
  readonly tokenizerPath: string;
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function rangesBytes(ranges: CalibrationRanges): Buffer {
  const d = ranges.min.length;
  const buf = Buffer.alloc(d * 8);
  for (let i = 0; i < d; i++) {
    buf.writeFloatLE(ranges.min[i]!, i * 4);
    buf.writeFloatLE(ranges.max[i]!, (d + i) * 4);
  }
  return buf;
}

/** The bundle fingerprint as docs/model-bundle.md defines it. */
export function computeFingerprint(parts: {
  modelSha256: string;
  tokenizerSha256: string;
  ranges: CalibrationRanges;
  dimension: number;
  maxTokens: number;
  prompts: Record<InputType, string>;
}): string {
  const text = [
    BUNDLE_FORMAT,
    parts.modelSha256,
    parts.tokenizerSha256,
    createHash('sha256').update(rangesBytes(parts.ranges)).digest('hex'),
    String(parts.dimension),
    String(parts.maxTokens),
    JSON.stringify(parts.prompts.query),
    JSON.stringify(parts.prompts.document),
  ].join('\n');
  return createHash('sha256').update(text, 'utf8').digest('hex').slice(0, 16);
}

/**
 * Reads, validates and fingerprints the bundle in `dir`. The ONNX graph itself is checked
 * when the model session is created (see runner.ts).
 */
export async function loadBundle(dir: string): Promise<Bundle> {
  const abs = path.resolve(dir);
  const where = `model bundle ${abs}`;
  const modelPath = path.join(abs, 'model.onnx');
  const tokenizerPath = path.join(abs, 'tokenizer.json');
  const manifestPath = path.join(abs, MANIFEST_FILE);
  const missing: string[] = [];
  for (const f of [manifestPath, modelPath, tokenizerPath]) {
    try {
      await access(f);
    } catch {
      missing.push(path.basename(f));
    }
  }
  if (missing.length > 0) throw new BundleError(`${where}: missing ${missing.join(', ')} (see docs/model-bundle.md)`);

  const manifest = readManifest(abs);
  const ranges: CalibrationRanges = {
    min: Float32Array.from(manifest.calibration.min),
    max: Float32Array.from(manifest.calibration.max),
  };
  const [modelSha256, tokenizerSha256] = await Promise.all([sha256File(modelPath), sha256File(tokenizerPath)]);
  const fingerprint = computeFingerprint({
    modelSha256,
    tokenizerSha256,
    ranges,
    dimension: manifest.dimension,
    maxTokens: manifest.max_tokens,
    prompts: manifest.prompts,
  });
  if (fingerprint !== manifest.fingerprint) {
    throw new BundleError(
      `${where}: fingerprint mismatch: manifest says ${manifest.fingerprint} but the files give ${fingerprint}; ` +
        'model.onnx, tokenizer.json or the calibration changed after the manifest was written (rebuild the bundle with the worker)',
    );
  }
  return { dir: abs, manifest, fingerprint, dimension: manifest.dimension, ranges, modelPath, tokenizerPath };
}
