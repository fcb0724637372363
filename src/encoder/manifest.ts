/**
 * The service's one reader of manifest.json: every module that needs a bundle's manifest (the
 * bundle loader, the model registry, activation, the encoder choice) reads it here. It checks
 * the manifest against the contract (src/contracts/manifest.ts, contracts/manifest.schema.json,
 * which the worker checks too) and then what JSON Schema cannot say; a mismatch is a
 * BundleError naming the bundle and every problem.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { BUNDLE_FORMAT, type Manifest, ManifestSchema } from '../contracts/manifest.js';

export const MANIFEST_FILE = 'manifest.json';

/** A bundle the service cannot serve; the message names the bundle and the problem. */
export class BundleError extends Error {
  override name = 'BundleError';
}

const checkSchema = new Ajv({ allErrors: true, strict: false }).compile<Manifest>(ManifestSchema);

/** One ajv error as a reader would say it: the field's dotted path, then what is wrong. */
function describe(e: ErrorObject): string {
  const field = e.instancePath.slice(1).replaceAll('/', '.');
  if (e.keyword === 'required') {
    const missing = `${field ? `${field}.` : ''}${String(e.params.missingProperty)}`;
    return missing === 'calibration' ? '"calibration" is missing: int8/uint8 need per-dimension ranges' : `"${missing}" is missing`;
  }
  if (e.keyword === 'enum') return `"${field}" must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
  if (e.keyword === 'contains') return `"${field}" must include input_ids and attention_mask`;
  return `"${field}" ${e.message ?? 'is invalid'}`;
}

/** What the schema cannot say: lengths and orders tied to `dimension`, non-empty ranges. */
function semanticProblems(m: Manifest): string[] {
  const problems: string[] = [];
  const dim = m.dimension;
  const bits = m.binary_code_bits;
  if (bits !== undefined && !(bits[0] === dim && bits.every((b, i) => i === 0 || b < bits[i - 1]!))) {
    problems.push('"binary_code_bits" must list multiples of 8, the dimension first, in decreasing order');
  }
  for (const key of ['min', 'max'] as const) {
    const v = m.calibration[key];
    if (v.length !== dim || !v.every(Number.isFinite)) problems.push(`"calibration.${key}" must hold ${dim} finite numbers`);
  }
  if (problems.length === 0) {
    // As float32, the precision the ranges are used at.
    const empty = m.calibration.min.findIndex((lo, i) => !(Math.fround(m.calibration.max[i]!) > Math.fround(lo)));
    if (empty >= 0) problems.push(`"calibration" range of dimension ${empty} is empty (max must be > min)`);
  }
  return problems;
}

/** Checks a parsed manifest; returns it typed or throws a BundleError listing every problem. */
export function validateManifest(raw: unknown, where: string): Manifest {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new BundleError(`${where}: manifest.json must hold a JSON object`);
  const format = (raw as { format?: unknown }).format;
  if (format !== BUNDLE_FORMAT) {
    throw new BundleError(`${where}: manifest format ${JSON.stringify(format)} is not supported (expected "${BUNDLE_FORMAT}")`);
  }
  const problems = checkSchema(raw) ? semanticProblems(raw) : [...new Set((checkSchema.errors ?? []).map(describe))];
  if (problems.length > 0) throw new BundleError(`${where}: invalid manifest.json: ${problems.join('; ')}`);
  return raw as Manifest;
}

/** Whether `dir` holds a bundle's manifest (valid or not). */
export const hasManifest = (dir: string): boolean => existsSync(path.join(dir, MANIFEST_FILE));

/** Reads and checks the manifest of the bundle in `dir`. */
export function readManifest(dir: string): Manifest {
  const where = `model bundle ${path.resolve(dir)}`;
  let text: string;
  try {
    text = readFileSync(path.join(dir, MANIFEST_FILE), 'utf8');
  } catch (e) {
    throw new BundleError(`${where}: cannot read ${MANIFEST_FILE} (${(e as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new BundleError(`${where}: manifest.json is not valid JSON (${(e as Error).message})`);
  }
  return validateManifest(raw, where);
}

/** The binary code lengths a bundle supports: its manifest's list, or the full length only. */
export function supportedCodeBits(manifest: Manifest): number[] {
  return manifest.binary_code_bits ?? [manifest.dimension];
}
