/**
 * Loading and checking a model bundle (docs/model-bundle.md): the manifest is the contract
 * between the worker that writes bundles and this service, so every field is checked and a
 * mismatch stops the service with a message that says what is wrong.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { CalibrationRanges } from '../quantization/quantize.js';

export const BUNDLE_FORMAT = 'qembed.bundle/v1';
export const POOLINGS = ['mean', 'cls', 'lasttoken'] as const;
export const INPUT_TYPES = ['query', 'document'] as const;
export type InputType = (typeof INPUT_TYPES)[number];

export interface Manifest {
  format: typeof BUNDLE_FORMAT;
  name: string;
  fingerprint: string;
  source: { model: string; package?: string; weights_sha256?: string; [k: string]: unknown };
  created_at?: string;
  created_by?: string;
  dimension: number;
  max_tokens: number;
  pooling: (typeof POOLINGS)[number];
  normalize: boolean;
  prompts: Record<InputType, string>;
  weights: { precision: 'float32' | 'float16' | 'int8'; method?: string; [k: string]: unknown };
  onnx: { inputs: string[]; output: string };
  calibration: {
    method: 'minmax' | 'quantile';
    quantile?: number | null;
    corpus?: Record<string, unknown>;
    min: number[];
    max: number[];
  };
  training?: Record<string, unknown> | null;
  evaluation?: Record<string, unknown> | null;
  /**
   * Binary code lengths the model was trained for, longest (the dimension) first: each is the
   * signs of the embedding's first N dimensions (a compact first stage). Absent: the full
   * length only.
   */
  binary_code_bits?: number[];
}

/** Whether `model` names this bundle: its fingerprint or its manifest name (what requests may send). */
export const namesBundle = (bundle: Bundle, model: string): boolean => model === bundle.fingerprint || model === bundle.manifest.name;

/** The binary code lengths a bundle supports: its manifest's list, or the full length only. */
export function supportedCodeBits(manifest: Manifest): number[] {
  return manifest.binary_code_bits ?? [manifest.dimension];
}

export interface Bundle {
  readonly dir: string;
  readonly manifest: Manifest;
  readonly fingerprint: string;
  readonly dimension: number;
  readonly ranges: CalibrationRanges;
  readonly modelPath: string;
  readonly tokenizerPath: string;
}

/** A bundle the service cannot serve; the message names the bundle and the problem. */
export class BundleError extends Error {
  override name = 'BundleError';
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks a parsed manifest's shape; returns it typed or throws a BundleError listing every problem. */
export function validateManifest(raw: unknown, where: string): Manifest {
  const problems: string[] = [];
  const need = (ok: boolean, what: string) => {
    if (!ok) problems.push(what);
  };
  if (!isObject(raw)) throw new BundleError(`${where}: manifest.json must hold a JSON object`);
  const m = raw;
  if (m.format !== BUNDLE_FORMAT) {
    throw new BundleError(`${where}: manifest format ${JSON.stringify(m.format)} is not supported (expected "${BUNDLE_FORMAT}")`);
  }
  need(typeof m.name === 'string' && m.name.length > 0, '"name" must be a non-empty string');
  need(typeof m.fingerprint === 'string' && /^[0-9a-f]{16}$/.test(m.fingerprint), '"fingerprint" must be 16 lowercase hex digits');
  need(isObject(m.source) && typeof m.source.model === 'string', '"source.model" must be a string');
  const dim = m.dimension;
  need(Number.isInteger(dim) && (dim as number) > 0 && (dim as number) % 8 === 0, '"dimension" must be a positive multiple of 8');
  need(Number.isInteger(m.max_tokens) && (m.max_tokens as number) >= 2, '"max_tokens" must be an integer ≥ 2');
  need(POOLINGS.includes(m.pooling as never), `"pooling" must be one of ${POOLINGS.join(', ')}`);
  need(typeof m.normalize === 'boolean', '"normalize" must be a boolean');
  if (m.binary_code_bits !== undefined) {
    const bits = m.binary_code_bits;
    need(
      Array.isArray(bits) &&
        bits.length > 0 &&
        bits[0] === dim &&
        bits.every((b, i) => Number.isInteger(b) && b > 0 && b % 8 === 0 && (i === 0 || b < (bits[i - 1] as number))),
      '"binary_code_bits" must list multiples of 8, the dimension first, in decreasing order',
    );
  }
  need(isObject(m.prompts) && INPUT_TYPES.every((t) => typeof (m.prompts as Record<string, unknown>)[t] === 'string'), '"prompts" must map query and document to strings');
  need(isObject(m.weights) && ['float32', 'float16', 'int8'].includes(m.weights.precision as string), '"weights.precision" must be float32, float16 or int8');
  const onnx = m.onnx;
  need(
    isObject(onnx) && Array.isArray(onnx.inputs) && onnx.inputs.every((s) => typeof s === 'string') && typeof onnx.output === 'string',
    '"onnx" must have "inputs" (strings) and "output" (a string)',
  );
  if (isObject(onnx) && Array.isArray(onnx.inputs)) {
    for (const required of ['input_ids', 'attention_mask']) need(onnx.inputs.includes(required), `"onnx.inputs" must include ${required}`);
  }
  const cal = m.calibration;
  if (!isObject(cal)) {
    problems.push('"calibration" is missing: int8/uint8 need per-dimension ranges');
  } else {
    need(cal.method === 'minmax' || cal.method === 'quantile', '"calibration.method" must be minmax or quantile');
    for (const key of ['min', 'max'] as const) {
      const v = cal[key];
      need(Array.isArray(v) && v.length === dim && v.every((x) => typeof x === 'number' && Number.isFinite(x)), `"calibration.${key}" must hold ${String(dim)} finite numbers`);
    }
    if (problems.length === 0) {
      const lo = cal.min as number[];
      const hi = cal.max as number[];
      const empty = lo.findIndex((x, i) => !(Math.fround(hi[i]!) > Math.fround(x)));
      need(empty < 0, `"calibration" range of dimension ${empty} is empty (max must be > min)`);
    }
  }
  if (problems.length > 0) throw new BundleError(`${where}: invalid manifest.json: ${problems.join('; ')}`);
  return m as unknown as Manifest;
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
  const manifestPath = path.join(abs, 'manifest.json');
  const missing: string[] = [];
  for (const f of [manifestPath, modelPath, tokenizerPath]) {
    try {
      await access(f);
    } catch {
      missing.push(path.basename(f));
    }
  }
  if (missing.length > 0) throw new BundleError(`${where}: missing ${missing.join(', ')} (see docs/model-bundle.md)`);

  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(manifestPath, 'utf8'));
  } catch (e) {
    throw new BundleError(`${where}: manifest.json is not valid JSON (${(e as Error).message})`);
  }
  const manifest = validateManifest(raw, where);
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
