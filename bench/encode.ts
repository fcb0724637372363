/**
 * npm run bench:encode — texts/second for the same 1,000 real passages (MS MARCO, from
 * ../shared/datasets/msmarco-5k) through:
 *   (a) the served encoder in-process (the service's tokenizer, batching queue and
 *       onnxruntime-node), in calls of 1 and 32 texts;
 *   (b) a float32 bundle's graph in Python onnxruntime at batch 1 and at its best batch
 *       (8, 32 or 64 texts sorted by length over the whole corpus, at onnxruntime's default
 *       optimization level and at the basic one: the baseline at its best);
 *   (c) the original model in sentence-transformers (PyTorch, CPU), first round only;
 *   (d) the served encoder over HTTP with autocannon, 1 and 32 concurrent single-text requests.
 * It prints the processor first (every figure says which CPU it came from), then ratios taken
 * within each round (the machines are shared and noisy; absolute numbers move, ratios much less).
 *
 * Stages run once per round (--rounds, default 3), rotated; the medians of the per-round ratios
 * are printed.
 *
 * Options: --bundle DIR (the served encoder; default: what the service serves, i.e. for
 * QEMBED_MODEL_DIR=auto the choice recorded in models/encoder-choice.json, measured first when
 * this machine has none), --float32 DIR
 * (repeatable; default models/default), --texts N (default 1000), --rounds R, --skip-torch,
 * --python PATH (the worker's Python; default: scripts/worker-env's).
 *
 * --smoke: a run of seconds that proves the benchmark works end to end (test/bench/smoke.test.ts
 * runs it): the test fixture's tiny bundle as the served and the float32 encoder, 32 of the
 * parity texts (test/fixtures/parity-texts.json) instead of MS MARCO, one round. Its figures
 * mean nothing.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { processConfig } from '../src/config.js';
import { loadBundle } from '../src/encoder/bundle.js';
import { currentCpu } from '../src/encoder/cpu.js';
import { createEncoder } from '../src/encoder/encoder.js';
import { resolveForConfig } from '../src/models/encoder-choice.js';
import { projectRoot } from '../src/paths.js';
import { startServer } from '../test/helpers/server-process.js';
import { median } from './stats.js';

const { values: opts } = parseArgs({
  options: {
    bundle: { type: 'string' },
    float32: { type: 'string', multiple: true },
    texts: { type: 'string', default: '1000' },
    'skip-torch': { type: 'boolean', default: false },
    rounds: { type: 'string' },
    python: { type: 'string' },
    smoke: { type: 'boolean', default: false },
  },
});
const smoke = opts.smoke;
const fixture = path.join(projectRoot, 'test', 'fixtures', 'tiny-bundle');
if (smoke) {
  opts.bundle ??= fixture;
  opts.float32 ??= [fixture];
}
opts.rounds ??= smoke ? '1' : '3';

const corpus = smoke
  ? path.join(projectRoot, 'test', 'fixtures', 'parity-texts.json')
  : path.resolve(projectRoot, '..', 'shared', 'datasets', 'msmarco-5k', 'corpus.jsonl');
if (!existsSync(corpus)) {
  console.error(`bench:encode: ${corpus} not found (the benchmark needs the real passages; --smoke runs on the test fixtures)`);
  process.exit(1);
}
const count = smoke ? 32 : Number(opts.texts);
if (!Number.isInteger(count) || count < 32) {
  console.error('bench:encode: --texts must be an integer of at least 32 (stage (d) runs 32 concurrent requests)');
  process.exit(2);
}
const texts = smoke
  ? (JSON.parse(readFileSync(corpus, 'utf8')) as string[]).slice(0, count)
  : readFileSync(corpus, 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .slice(0, count)
      .map((l) => (JSON.parse(l) as { text: string }).text);

const config = processConfig();
// The encoder the service serves: for QEMBED_MODEL_DIR=auto its recorded choice, measured now
// (and recorded, as the service's first start would) when there is none for this machine.
const resolved = opts.bundle
  ? undefined
  : await resolveForConfig(config, createEncoder, { boundFingerprints: () => new Set(), log: (message) => console.log(`  ${message}`) });
const served = path.resolve(opts.bundle ?? resolved!.dir);
const float32Dirs = (opts.float32 ?? [path.join(projectRoot, 'models', 'default')]).map((d) => path.resolve(d));
const servedBundle = await loadBundle(served);
const cpu = currentCpu();
console.log(`bench:encode — ${texts.length} ${smoke ? 'fixture texts (--smoke: the figures mean nothing)' : 'MS MARCO passages'}, ${opts.rounds} round(s)`);
console.log(`CPU: ${cpu.model} (${cpu.arch}, ${cpu.cpus} CPUs available); features: ${cpu.features.join(' ') || 'unknown'}; int8 kernel: ${cpu.int8Kernel}`);
console.log(
  `served encoder: ${served} (${servedBundle.manifest.weights.precision} weights, fingerprint ${servedBundle.fingerprint})` +
    (opts.bundle ? ', named by --bundle' : config.modelDir === 'auto' ? ', the QEMBED_MODEL_DIR=auto choice' : ', QEMBED_MODEL_DIR'),
);
const choice = resolved?.record;
if (choice) {
  for (const c of choice.candidates) {
    console.log(`  choice measured ${choice.measured_at}: ${c.dir} ${c.texts_per_second ? `${c.texts_per_second.calls_of_32} texts/s at calls of 32` : ''} ${c.problem ?? ''}`);
  }
}
for (const dir of float32Dirs) {
  const b = await loadBundle(dir);
  console.log(`float32 baseline: ${dir} (${b.manifest.weights.precision} weights, fingerprint ${b.fingerprint})`);
}

type Results = Record<string, number>;
let results: Results = {};
const record = (name: string, textsPerSecond: number) => {
  results[name] = textsPerSecond;
  console.log(`  ${name.padEnd(64)} ${textsPerSecond.toFixed(1).padStart(8)} texts/s`);
};

const rounds = Number(opts.rounds);

/** (a) the served encoder in-process. */
async function inProcess(): Promise<void> {
  const encoder = await createEncoder(servedBundle, config);
  await encoder.embed(texts.slice(0, 16), { inputType: 'document', truncate: true });
  const { tokens } = await encoder.embed(texts, { inputType: 'document', truncate: true });
  console.log(`  (${(tokens.reduce((a, b) => a + b, 0) / tokens.length).toFixed(1)} tokens a text on average)`);
  for (const batch of [1, 32]) {
    const start = performance.now();
    for (let i = 0; i < texts.length; i += batch) {
      await encoder.embed(texts.slice(i, i + batch), { inputType: 'document', truncate: true });
    }
    record(`(a) served in-process, calls of ${batch}`, texts.length / ((performance.now() - start) / 1000));
  }
  await encoder.close();
}

/** (b) float32 bundles in Python onnxruntime; (c) sentence-transformers unless skipped. */
function python(skipTorch: boolean): void {
  const dir = mkdtempSync(path.join(tmpdir(), 'qembed-bench-'));
  const textsFile = path.join(dir, 'texts.json');
  writeFileSync(textsFile, JSON.stringify(texts));
  const python = opts.python ?? execFileSync(path.join(projectRoot, 'scripts', 'worker-env'), { encoding: 'utf8' }).trim();
  for (const [k, bundle] of float32Dirs.entries()) {
    const args = [path.join(projectRoot, 'bench', 'encode_reference.py'), '--bundle', bundle, '--texts', textsFile];
    if (skipTorch || k > 0) args.push('--skip-torch');
    const out = JSON.parse(execFileSync(python, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })) as Record<string, Record<string, number>>;
    const label = float32Dirs.length > 1 ? ` [${path.basename(bundle)}]` : '';
    const ort = out.onnxruntime ?? {};
    for (const [key, v] of Object.entries(ort)) record(`(b) Python onnxruntime${label} ${key}`, v);
    const batched = Object.entries(ort).filter(([key]) => !key.includes('batch 1,') && !key.endsWith('batch 1'));
    const one = Object.entries(ort).filter(([key]) => key.endsWith('batch 1'));
    record(`(b) Python onnxruntime${label} best batch`, Math.max(...batched.map(([, v]) => v)));
    record(`(b) Python onnxruntime${label} best batch 1`, Math.max(...one.map(([, v]) => v)));
    for (const [b, v] of Object.entries(out.sentence_transformers ?? {})) record(`(c) sentence-transformers, batch ${b}`, v);
  }
  rmSync(dir, { recursive: true, force: true });
}

/** (d) the served encoder over HTTP with autocannon. */
async function http(): Promise<void> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'qembed-bench-data-'));
  const server = await startServer({ QEMBED_MODEL_DIR: served, QEMBED_DATA_DIR: dataDir, QEMBED_LOG_LEVEL: 'warn' }, 120_000);
  for (const connections of [1, 32]) {
    let next = 0;
    const result = await autocannon({
      url: server.url,
      connections,
      amount: texts.length,
      requests: [
        {
          method: 'POST',
          path: '/encode',
          headers: { 'content-type': 'application/json' },
          setupRequest: (req) => ({ ...req, body: JSON.stringify({ inputs: texts[next++ % texts.length] }) }),
        },
      ],
    });
    if (result.non2xx > 0 || result.errors > 0) {
      // A smoke run proves the path works: a failed request fails it.
      if (smoke) throw new Error(`(d) HTTP: ${result.non2xx} non-2xx answers, ${result.errors} errors`);
      console.log(`  warning: ${result.non2xx} non-2xx, ${result.errors} errors`);
    }
    record(`(d) HTTP, ${connections} concurrent`, result.requests.total / result.duration);
  }
  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });
}

// Rounds: every stage once per round, the stages rotated so that none always runs first, and
// each ratio taken within its round (the machine's speed drifts between minutes).
const perRound: Results[] = [];
for (let round = 0; round < rounds; round++) {
  results = {};
  if (rounds > 1) console.log(`round ${round + 1}/${rounds}`);
  const stages = [() => inProcess(), async () => python(Boolean(opts['skip-torch']) || round > 0), () => http()];
  for (let k = 0; k < stages.length; k++) await stages[(k + round) % stages.length]!();
  perRound.push(results);
}
if (rounds > 1) {
  console.log(`\nmedian over ${rounds} rounds:`);
  const names = [...new Set(perRound.flatMap((r) => Object.keys(r)))];
  for (const name of names) console.log(`  ${name.padEnd(64)} ${median(perRound.map((r) => r[name] ?? NaN)).toFixed(1).padStart(8)} texts/s`);
}

const ratio = (a: string, b: string) => median(perRound.map((r) => (r[a] && r[b] ? r[a]! / r[b]! : NaN)));
const show = (label: string, value: number, target?: number) =>
  console.log(`  ${label.padEnd(78)} ${value.toFixed(2)}${target ? `  (target >= ${target}: ${value >= target ? 'met' : 'MISSED'})` : ''}`);
console.log(`\nratios on ${cpu.model} (${cpu.features.filter((f) => /avx2|avx512f|vnni|asimddp|i8mm/.test(f)).join(', ') || 'no AVX2'})${rounds > 1 ? ', median of the per-round ratios' : ''}:`);
for (const dir of float32Dirs) {
  const label = float32Dirs.length > 1 ? ` [${path.basename(dir)}]` : '';
  show(`(a) served, calls of 32 / (b) Python onnxruntime float32${label}, best batch`, ratio('(a) served in-process, calls of 32', `(b) Python onnxruntime${label} best batch`), 2.0);
  show(`(a) served, calls of 1 / (b) Python onnxruntime float32${label}, batch 1`, ratio('(a) served in-process, calls of 1', `(b) Python onnxruntime${label} best batch 1`));
}
show('(d) HTTP 32 concurrent / (a) served, calls of 32', ratio('(d) HTTP, 32 concurrent', '(a) served in-process, calls of 32'), 0.9);
show('(d) HTTP 1 concurrent / (a) served, calls of 1', ratio('(d) HTTP, 1 concurrent', '(a) served in-process, calls of 1'));
if (!opts['skip-torch']) show('(a) served, calls of 32 / (c) sentence-transformers batch 32', ratio('(a) served in-process, calls of 32', '(c) sentence-transformers, batch 32'));
