/**
 * npm run bench:transform-codes — how fast first-stage codes are recomputed from stored int8
 * codes without the model (src/transform/transform.ts: int8Coder), which is what switching a
 * collection's transform costs. One thread, random int8 codes of the served bundle's dimension
 * (the arithmetic does not depend on the values), per code length: first dims (one comparison
 * per bit: the baseline, measured in the same run), a seeded rotation and a fitted-like transform
 * (a dense bits × d matrix and a mean: the same arithmetic as ITQ or QAT). Prints documents/s and
 * the ratio to first dims; issue 24 asks >= 200,000 documents/s on 2 cores.
 *
 * Options: --documents N (default 100,000), --bits 128,64 (default), --rounds R (default 3, the
 * median kept). --smoke: 2,000 documents, one round, the tiny bundle.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { processConfig } from '../src/config.js';
import { loadBundle } from '../src/encoder/bundle.js';
import { currentCpu } from '../src/encoder/cpu.js';
import { modelDirForTools } from '../src/models/encoder-choice.js';
import { projectRoot } from '../src/paths.js';
import { createQuantizer } from '../src/quantization/quantize.js';
import { type CodeTransform, firstDims, int8Coder, linearTransform, seededRotation } from '../src/transform/transform.js';
import { xorshift32 } from '../test/helpers/random.js';
import { median } from './stats.js';

const { values: opts } = parseArgs({
  options: { documents: { type: 'string' }, bits: { type: 'string' }, rounds: { type: 'string' }, smoke: { type: 'boolean', default: false } },
});
const smoke = opts.smoke;
const bundleDir = smoke ? path.join(projectRoot, 'test', 'fixtures', 'tiny-bundle') : modelDirForTools(processConfig());
const bundle = await loadBundle(bundleDir);
const d = bundle.dimension;
const documents = Number(opts.documents ?? (smoke ? 2000 : 100_000));
const rounds = Number(opts.rounds ?? (smoke ? 1 : 3));
const bitsList = (opts.bits ?? (smoke ? String(Math.min(d, 16)) : '128,64')).split(',').map(Number);
const quantizer = createQuantizer(bundle.ranges);
console.log(`bench:transform-codes: ${documents} int8 codes of ${d} dimensions, one thread, median of ${rounds} rounds, on ${currentCpu().model}`);

const next = xorshift32(5);
const codes = Int8Array.from({ length: documents * d }, () => (next() & 0xff) - 128);
const fitted = (bits: number): CodeTransform =>
  linearTransform(
    'itq',
    '0000000000000000',
    Float32Array.from({ length: d }, () => (next() / 2 ** 32 - 0.5) * 0.01),
    Float32Array.from({ length: bits * d }, () => next() / 2 ** 32 - 0.5),
    bits,
  );

function docsPerSecond(t: CodeTransform): number {
  const coder = int8Coder(t, quantizer);
  const out = new Uint8Array(documents * (t.bits / 8));
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const started = performance.now();
    coder.encode(codes, documents, out);
    times.push(performance.now() - started);
  }
  return documents / (median(times) / 1000);
}

for (const bits of bitsList) {
  const base = docsPerSecond(firstDims(d, bits));
  const line = [`${bits} bits: first dims ${Math.round(base).toLocaleString('en')} documents/s`];
  for (const [name, t] of [
    ['seeded rotation', seededRotation(d, bits)],
    ['fitted (dense)', fitted(bits)],
  ] as const) {
    const rate = docsPerSecond(t);
    line.push(`${name} ${Math.round(rate).toLocaleString('en')} documents/s (${(rate / base).toFixed(3)}x first dims)`);
  }
  console.log(line.join('; '));
}
