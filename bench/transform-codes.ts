/**
 * npm run bench:transform-codes — how fast first-stage codes are recomputed from stored int8
 * codes without the model (src/transform/transform.ts: int8Coder), which is what switching a
 * collection's transform costs. Random int8 codes of the served bundle's dimension (the
 * arithmetic does not depend on the values), per code length: first dims (one comparison per
 * bit), then a seeded rotation and a fitted-like transform (a dense bits × d matrix and a mean:
 * the same arithmetic as ITQ or QAT) by the scalar float64 scan and by the SIMD kernel
 * (sign-kernel.ts), one thread each, with the kernel's ratio to the scan in the same run; then
 * the kernel on 2 threads (worker_threads, each a half of the documents in shared buffers) for
 * the fitted transform, with its ratio to one thread. Issue 24 asks >= 200,000 documents/s on
 * 2 cores.
 *
 * Options: --documents N (default 100,000), --bits 128,64 (default), --rounds R (default 3, the
 * median kept), --threads T (default 2; 1 skips the parallel figure), --switch N (documents of the
 * end-to-end switch below, default 200,000; 0 skips it). --smoke: 2,000 documents, one round, a
 * 3,000-document switch, the tiny bundle.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { processConfig } from '../src/config.js';
import { loadBundle } from '../src/encoder/bundle.js';
import { createEncoder } from '../src/encoder/encoder.js';
import { createFirstStageIndex } from '../src/first-stage/first-stage.js';
import { createSearchService } from '../src/search/search-service.js';
import { openDatabase } from '../src/store/database.js';
import { createSqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { currentCpu } from '../src/encoder/cpu.js';
import { modelDirForTools } from '../src/models/encoder-choice.js';
import { projectRoot } from '../src/paths.js';
import { createQuantizer } from '../src/quantization/quantize.js';
import { type CodeTransform, firstDims, type Int8CoderOptions, int8Coder, linearTransform, seededRotation } from '../src/transform/transform.js';
import { xorshift32 } from '../test/helpers/random.js';
import { median } from './stats.js';
import type { ThreadData } from './transform-codes-thread.js';

const { values: opts } = parseArgs({
  options: {
    documents: { type: 'string' },
    bits: { type: 'string' },
    rounds: { type: 'string' },
    threads: { type: 'string' },
    switch: { type: 'string' },
    smoke: { type: 'boolean', default: false },
  },
});
const smoke = opts.smoke;
const bundleDir = smoke ? path.join(projectRoot, 'test', 'fixtures', 'tiny-bundle') : modelDirForTools(processConfig());
const bundle = await loadBundle(bundleDir);
const d = bundle.dimension;
const documents = Number(opts.documents ?? (smoke ? 2000 : 100_000));
const rounds = Number(opts.rounds ?? (smoke ? 1 : 3));
const bitsList = (opts.bits ?? (smoke ? String(d) : '128,64')).split(',').map(Number);
const threads = Number(opts.threads ?? 2);
const switchDocuments = Number(opts.switch ?? (smoke ? 3000 : 200_000));
const quantizer = createQuantizer(bundle.ranges);
console.log(`bench:transform-codes: ${documents} int8 codes of ${d} dimensions, median of ${rounds} rounds, on ${currentCpu().model}`);

const next = xorshift32(5);
// In a SharedArrayBuffer, which the parallel figure's threads read too.
const codes = new Int8Array(new SharedArrayBuffer(documents * d));
for (let i = 0; i < codes.length; i++) codes[i] = (next() & 0xff) - 128;
const fitted = (bits: number): CodeTransform =>
  linearTransform(
    'itq',
    '0000000000000000',
    Float32Array.from({ length: d }, () => (next() / 2 ** 32 - 0.5) * 0.01),
    Float32Array.from({ length: bits * d }, () => next() / 2 ** 32 - 0.5),
    bits,
  );

/** Documents/s of one thread, and which path the coder took. */
function docsPerSecond(t: CodeTransform, options: Int8CoderOptions = {}): { rate: number; kernel: string } {
  const coder = int8Coder(t, quantizer, options);
  const out = new Uint8Array(documents * (t.bits / 8));
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const started = performance.now();
    coder.encode(codes, documents, out);
    times.push(performance.now() - started);
  }
  return { rate: documents / (median(times) / 1000), kernel: coder.kernel };
}

/** Documents/s of `threads` threads, each coding its share, timed from the start message to the last answer. */
async function parallelDocsPerSecond(t: CodeTransform): Promise<{ rate: number; kernel: string }> {
  const out = new SharedArrayBuffer(documents * (t.bits / 8));
  const workers = Array.from({ length: threads }, (_, k) => {
    const data: ThreadData = {
      min: bundle.ranges.min,
      max: bundle.ranges.max,
      mean: t.mean,
      matrix: t.matrix!,
      bits: t.bits,
      codes: codes.buffer as SharedArrayBuffer,
      out,
      start: Math.floor((k * documents) / threads),
      end: Math.floor(((k + 1) * documents) / threads),
    };
    const entry = new URL('./transform-codes-thread.ts', import.meta.url).href;
    return new Worker(new URL('./ts-thread.mjs', import.meta.url), { workerData: { ...data, entry } });
  });
  const run = () => Promise.all(workers.map((w) => new Promise<string>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
    w.postMessage('run');
  })));
  let kernel = '';
  const times: number[] = [];
  try {
    await run(); // warm-up: threads start, compile and tier up the kernel
    for (let r = 0; r < rounds; r++) {
      const started = performance.now();
      kernel = (await run())[0]!;
      times.push(performance.now() - started);
    }
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return { rate: documents / (median(times) / 1000), kernel };
}

const rate = (r: number) => `${Math.round(r).toLocaleString('en')} documents/s`;
for (const bits of bitsList) {
  console.log(`${bits} bits: first dims ${rate(docsPerSecond(firstDims(d, bits)).rate)}`);
  const dense = fitted(bits);
  for (const [name, t] of [
    ['seeded rotation', seededRotation(d, bits)],
    ['fitted (dense)', dense],
  ] as const) {
    const scalar = docsPerSecond(t, { scalar: true });
    const kernel = docsPerSecond(t);
    console.log(`  ${name}: scalar ${rate(scalar.rate)}; ${kernel.kernel} ${rate(kernel.rate)} (${(kernel.rate / scalar.rate).toFixed(2)}x scalar), one thread`);
    if (t === dense && threads > 1) {
      const parallel = await parallelDocsPerSecond(t);
      console.log(`  ${name}: ${parallel.kernel} on ${threads} threads ${rate(parallel.rate)} (${(parallel.rate / kernel.rate).toFixed(2)}x one thread)`);
    }
  }
}

/**
 * End to end, as the service switches a collection (search/transforms.ts): N documents in a
 * SQLite database (file in a temporary folder), every code recomputed from the stored int8 codes,
 * staged, and swapped in; documents/s from the request to the swap, with its ratio to the one-
 * thread kernel above (the rest is reading the int8 codes and writing the staged codes).
 */
if (switchDocuments > 0) {
  const dir = mkdtempSync(path.join(tmpdir(), 'qembed-bench-switch-'));
  const db = openDatabase({ file: path.join(dir, 'qembed.sqlite') });
  const encoder = await createEncoder(bundle, processConfig({ intraOpThreads: 1 }));
  try {
    const store = createSqliteStore(db);
    const search = createSearchService({ store, firstStage: createFirstStageIndex(store), encoder: () => encoder });
    for (const bits of bitsList) {
      const name = `c${bits}`;
      search.createCollection(name, { codeBits: bits });
      const c = store.getCollection(name)!;
      const filled = performance.now();
      for (let i = 0; i < switchDocuments; i += 5000) {
        const n = Math.min(5000, switchDocuments - i);
        store.writeBatch(
          c.id,
          Array.from({ length: n }, (_, j) => {
            const at = ((i + j) % documents) * d;
            return { docId: `d${i + j}`, text: '', metadata: '{}', textSha256: `vector:${i + j}`, binaryCode: new Uint8Array(d / 8), int8Code: codes.slice(at, at + d) };
          }),
          [],
        );
      }
      const t = fitted(bits);
      store.saveTransform({ collectionId: c.id, fingerprint: t.fingerprint, method: 'itq', bits, dimension: d, mean: t.mean, matrix: t.matrix!, summary: '{}', createdAt: new Date().toISOString() });
      const kernel = docsPerSecond(t).rate;
      const started = performance.now();
      const outcome = await search.switchTransform(name, t.fingerprint, 'always');
      const seconds = (performance.now() - started) / 1000;
      const switched = switchDocuments / seconds;
      console.log(
        `switch of a ${switchDocuments.toLocaleString('en')}-document collection to a ${bits}-bit fitted transform (${outcome}; filled in ${((started - filled) / 1000).toFixed(1)} s): ` +
          `${seconds.toFixed(2)} s, ${rate(switched)} (${(switched / kernel).toFixed(2)}x the one-thread kernel, ${rate(kernel)}, in this run)`,
      );
    }
  } finally {
    await encoder.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
