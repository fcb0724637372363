/**
 * The code transforms bench:recall can measure beside first dims (`--transforms`): `rotation`
 * (a seeded random rotation: the same for every size) and `itq` / `qat`, fitted by the companion
 * worker (`python -m qembed_worker fit-transform`) on each size's documents, from their int8
 * codes dequantized as the service dequantizes them, so a fit sees only the collection it serves.
 * A size's fit makes every code length asked for at once, and is read back from its artifact
 * (src/transform/artifact.ts) exactly as the service will read it. Like the service, a fit sees
 * at most `fitMaxDocuments` of a size's documents (QEMBED_FIT_MAX_DOCUMENTS' default), spread
 * over them, and holds a tenth of its sample out (100 to 1,000) for its own evaluation.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { configSchema } from '../../src/config.js';
import { writeNpy } from '../../src/files/npy.js';
import { projectRoot } from '../../src/paths.js';
import { dequantizeInt8 } from '../../src/quantization/dequantize.js';
import type { Quantizer } from '../../src/quantization/quantize.js';
import { loadTransform } from '../../src/transform/artifact.js';
import { type CodeTransform, seededRotation } from '../../src/transform/transform.js';
import type { TransformSource } from './measure.js';

export const BENCH_TRANSFORMS = ['rotation', 'itq', 'qat'] as const;

export interface FitOptions {
  /** The worker's Python (scripts/worker-env); needed for itq and qat. */
  python?: string;
  quantizer: Quantizer;
  /** Every code length the bench measures: one fit per size makes them all. */
  bits: readonly number[];
  seed: number;
  /** Most documents a fit sees (default: the service's, QEMBED_FIT_MAX_DOCUMENTS). */
  fitMaxDocuments?: number;
  log: (line: string) => void;
}

/** What a size's fit was given: how many of its documents, and the fit's own record. */
export interface FitRecord {
  transform: string;
  documents: number;
  sampled: number;
  /** The artifact's transform.json (training summary, the fit's held-out evaluation). */
  manifest: unknown;
}

/**
 * The rows a fit of `size` documents sees: every `ceil(size / limit)`-th, at most `limit`, the
 * rule src/search/transforms.ts' codeSample applies to a collection's rowid order.
 */
export function fitSampleRows(size: number, limit: number): Uint32Array {
  const every = Math.max(1, Math.ceil(size / limit));
  return Uint32Array.from({ length: Math.min(limit, Math.ceil(size / every)) }, (_, i) => i * every);
}

/** The vectors the stored int8 codes of `rows` stand for (dequantizeInt8, row by row). */
function dequantizeRows(int8: Int8Array, rows: Uint32Array, quantizer: Quantizer): Float32Array {
  const d = quantizer.dimension;
  const out = new Float32Array(rows.length * d);
  rows.forEach((r, i) => out.set(dequantizeInt8(int8.subarray(r * d, (r + 1) * d), quantizer), i * d));
  return out;
}

function workerFit(method: 'itq' | 'qat', o: FitOptions, python: string, fits: FitRecord[]): TransformSource {
  const limit = o.fitMaxDocuments ?? configSchema.fitMaxDocuments.default;
  const fitted = new Map<number, string>(); // size -> artifact folder
  const work = mkdtempSync(path.join(tmpdir(), `qembed-recall-${method}-`));
  process.once('exit', () => rmSync(work, { recursive: true, force: true }));
  return {
    name: method,
    make(size: number, bits: number, int8: Int8Array): CodeTransform {
      let dir = fitted.get(size);
      if (!dir) {
        dir = path.join(work, String(size));
        const vectors = path.join(work, `vectors-${size}.npy`);
        const rows = fitSampleRows(size, limit);
        writeNpy(vectors, { rows: rows.length, columns: o.quantizer.dimension, data: dequantizeRows(int8, rows, o.quantizer) });
        // The service's holdout rule (src/jobs/transform-fits.ts): a tenth of the sample, 100 to 1,000.
        const holdout = Math.max(100, Math.min(1000, Math.round(rows.length / 10)));
        o.log(`fitting ${method} on ${rows.length.toLocaleString('en')} of ${size.toLocaleString('en')} documents (${o.bits.join(', ')} bits) with the worker`);
        const printed = execFileSync(
          python,
          ['-m', 'qembed_worker', 'fit-transform', '--vectors', vectors, '--bits', o.bits.join(','), '--method', method, '--seed', String(o.seed), '--holdout', String(holdout), '--max-documents', String(rows.length), '--out', dir],
          { cwd: path.join(projectRoot, 'worker'), stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 64 << 20 },
        );
        rmSync(vectors, { force: true });
        fits.push({ transform: method, documents: size, sampled: rows.length, manifest: JSON.parse(printed) });
        fitted.set(size, dir);
      }
      return loadTransform(dir, bits);
    },
  };
}

/** The sources for `names` (BENCH_TRANSFORMS); each worker fit is recorded in `fits` as it is made. */
export function transformSources(names: readonly string[], o: FitOptions, fits: FitRecord[] = []): TransformSource[] {
  return names.map((name) => {
    switch (name) {
      case 'rotation':
        return { name, make: (_size: number, bits: number) => seededRotation(o.quantizer.dimension, bits, 1) };
      case 'itq':
      case 'qat':
        if (!o.python) throw new Error(`--transforms ${name} needs the worker's Python: --python $(scripts/worker-env)`);
        return workerFit(name, o, o.python, fits);
      default:
        throw new Error(`unknown transform "${name}": one of ${BENCH_TRANSFORMS.join(', ')}`);
    }
  });
}
