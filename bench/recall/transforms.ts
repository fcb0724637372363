/**
 * The code transforms bench:recall can measure beside first dims (`--transforms`): `rotation`
 * (a seeded random rotation: the same for every size) and `itq` / `qat`, fitted by the companion
 * worker (`python -m qembed_worker fit-transform`) on each size's documents, from their int8
 * codes dequantized as the service dequantizes them, so a fit sees only the collection it serves.
 * A size's fit makes every code length asked for at once, and is read back from its artifact
 * (src/transform/artifact.ts) exactly as the service will read it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
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
  log: (line: string) => void;
}

/** The vectors a collection's stored int8 codes stand for (dequantizeInt8, row by row). */
function dequantizeRows(int8: Int8Array, quantizer: Quantizer): Float32Array {
  const d = quantizer.dimension;
  const out = new Float32Array(int8.length);
  for (let r = 0; r < int8.length / d; r++) out.set(dequantizeInt8(int8.subarray(r * d, (r + 1) * d), quantizer), r * d);
  return out;
}

function workerFit(method: 'itq' | 'qat', o: FitOptions, python: string): TransformSource {
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
        writeNpy(vectors, { rows: size, columns: o.quantizer.dimension, data: dequantizeRows(int8, o.quantizer) });
        o.log(`fitting ${method} on ${size.toLocaleString('en')} documents (${o.bits.join(', ')} bits) with the worker`);
        execFileSync(
          python,
          ['-m', 'qembed_worker', 'fit-transform', '--vectors', vectors, '--bits', o.bits.join(','), '--method', method, '--seed', String(o.seed), '--holdout', String(Math.min(1000, Math.floor(size / 10))), '--out', dir],
          { cwd: path.join(projectRoot, 'worker'), stdio: ['ignore', 'ignore', 'inherit'] },
        );
        rmSync(vectors, { force: true });
        fitted.set(size, dir);
      }
      return loadTransform(dir, bits);
    },
  };
}

/** The sources for `names` (BENCH_TRANSFORMS). */
export function transformSources(names: readonly string[], o: FitOptions): TransformSource[] {
  return names.map((name) => {
    switch (name) {
      case 'rotation':
        return { name, make: (_size: number, bits: number) => seededRotation(o.quantizer.dimension, bits, 1) };
      case 'itq':
      case 'qat':
        if (!o.python) throw new Error(`--transforms ${name} needs the worker's Python: --python $(scripts/worker-env)`);
        return workerFit(name, o, o.python);
      default:
        throw new Error(`unknown transform "${name}": one of ${BENCH_TRANSFORMS.join(', ')}`);
    }
  });
}
