/**
 * A fitted transform as the worker writes it (`python -m qembed_worker fit-transform`): a folder
 * with transform.json and little-endian float32 .npy files, format `qembed.transform/v1`:
 *
 *   { "format": "qembed.transform/v1", "fingerprint": "<16 hex>", "method": "itq" | "qat",
 *     "model": "<bundle fingerprint>" | null, "dimension": d, "mean": "mean.npy",
 *     "lengths": { "<bits>": "<file>.npy", … }, "sample": {…}, "training": {…}, "evaluation": {…} }
 *
 * mean.npy holds μ (d values), each lengths file W for that code length (bits × d). The service
 * reads one length (the collection's); a length the artifact lacks is refused by name, as is any
 * file that does not match the shapes it declares or the fingerprint: the first 16 hex digits of
 * the SHA-256 of "qembed.transform/v1\n<method>\n<dimension>\n<lengths, longest first, comma-
 * separated>\n" followed by the bytes of the mean's file and of each length's, longest first
 * (worker/qembed_worker/transform/artifact.py writes it the same way).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { readNpy } from '../files/npy.js';
import { type CodeTransform, linearTransform, TransformError } from './transform.js';

export const TRANSFORM_FORMAT = 'qembed.transform/v1';
/** Methods a fitted artifact may name (first dims and the seeded rotation need no file). */
export const FITTED_METHODS = ['itq', 'qat'] as const;

export interface TransformManifest {
  format: string;
  fingerprint: string;
  method: (typeof FITTED_METHODS)[number];
  model: string | null;
  dimension: number;
  mean: string;
  lengths: Record<string, string>;
  sample?: Record<string, unknown>;
  training?: Record<string, unknown>;
  evaluation?: Record<string, unknown>;
}

/** transform.json of `dir`, its fields checked (not its arrays: loadTransform reads those). */
export function readTransformManifest(dir: string): TransformManifest {
  const file = path.join(dir, 'transform.json');
  if (!existsSync(file)) throw new TransformError(`${dir}: no transform.json (a folder written by \`python -m qembed_worker fit-transform\`)`);
  let m: TransformManifest;
  try {
    m = JSON.parse(readFileSync(file, 'utf8')) as TransformManifest;
  } catch (e) {
    throw new TransformError(`${file}: not JSON (${(e as Error).message})`);
  }
  const problems: string[] = [];
  if (m.format !== TRANSFORM_FORMAT) problems.push(`"format" must be "${TRANSFORM_FORMAT}"`);
  if (typeof m.fingerprint !== 'string' || !/^[0-9a-f]{16}$/.test(m.fingerprint)) problems.push('"fingerprint" must be 16 lowercase hex digits');
  if (!FITTED_METHODS.includes(m.method)) problems.push(`"method" must be one of ${FITTED_METHODS.join(', ')}`);
  if (!Number.isInteger(m.dimension) || m.dimension <= 0) problems.push('"dimension" must be a positive integer');
  if (typeof m.mean !== 'string') problems.push('"mean" must name a .npy file');
  if (typeof m.lengths !== 'object' || m.lengths === null || Object.keys(m.lengths).length === 0) problems.push('"lengths" must map code lengths to .npy files');
  if (problems.length > 0) throw new TransformError(`${file}: ${problems.join('; ')}`);
  return m;
}

/** The code lengths an artifact makes, ascending. */
export const artifactLengths = (m: Pick<TransformManifest, 'lengths'>): number[] =>
  Object.keys(m.lengths)
    .map(Number)
    .sort((a, b) => a - b);

/** A file named by the manifest, which must lie in the transform's folder. */
function inside(dir: string, name: string): string {
  const p = path.resolve(dir, name);
  if (path.dirname(p) !== path.resolve(dir)) throw new TransformError(`${dir}: "${name}" is not a file of the transform's folder`);
  if (!existsSync(p)) throw new TransformError(`${dir}: "${name}" is missing`);
  return p;
}

/** The fingerprint of the artifact's files, as the worker computes it (see above). */
export function transformFingerprint(dir: string, m: Pick<TransformManifest, 'method' | 'dimension' | 'mean' | 'lengths'>): string {
  const lengths = artifactLengths(m).reverse();
  const hash = createHash('sha256').update(`${TRANSFORM_FORMAT}\n${m.method}\n${m.dimension}\n${lengths.join(',')}\n`, 'utf8');
  hash.update(readFileSync(inside(dir, m.mean)));
  for (const bits of lengths) hash.update(readFileSync(inside(dir, m.lengths[String(bits)]!)));
  return hash.digest('hex').slice(0, 16);
}

/** The artifact's transform for `bits`; refuses a length it lacks, arrays of the wrong shape and files that are not the fingerprinted ones. */
export function loadTransform(dir: string, bits: number): CodeTransform {
  const m = readTransformManifest(dir);
  const file = m.lengths[String(bits)];
  if (file === undefined) throw new TransformError(`transform ${m.fingerprint} makes ${artifactLengths(m).join(', ')}-bit codes, not ${bits}`);
  const actual = transformFingerprint(dir, m);
  if (actual !== m.fingerprint) throw new TransformError(`${dir}: its files have fingerprint ${actual}, transform.json says ${m.fingerprint} (changed since it was written?)`);
  const mean = readNpy(inside(dir, m.mean));
  if (mean.rows * mean.columns !== m.dimension) throw new TransformError(`${m.mean}: ${mean.rows * mean.columns} values, the transform declares ${m.dimension} dimensions`);
  const matrix = readNpy(inside(dir, file));
  if (matrix.rows !== bits || matrix.columns !== m.dimension) throw new TransformError(`${file}: ${matrix.rows} x ${matrix.columns}, expected ${bits} x ${m.dimension}`);
  return linearTransform(m.method, m.fingerprint, Float32Array.from(mean.data), Float32Array.from(matrix.data), bits);
}
