/**
 * npm run bench:encode — texts/second for the same 1,000 real passages (MS MARCO, from
 * ../shared/datasets/msmarco-5k) through:
 *   (a) the service's encoder in-process, in calls of 1, 8 and 32 texts;
 *   (b) the same ONNX graph in Python onnxruntime (batches in corpus order, and length-sorted);
 *   (c) the original model in sentence-transformers (PyTorch, CPU);
 *   (d) the service over HTTP with autocannon, 1 and 32 concurrent single-text requests.
 * Everything runs in this one invocation, one stage at a time, and the comparison is printed
 * as ratios (the machines are shared and noisy; absolute numbers move, ratios much less).
 *
 * Stages (a), (b) and (d) run once per round (--rounds, default 3), rotated; ratios are taken
 * within each round, then their median printed.
 *
 * Options: --bundle DIR (default models/default), --texts N (default 1000), --rounds R, --skip-torch.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { loadConfig } from '../src/config.js';
import { loadBundle } from '../src/encoder/bundle.js';
import { createEncoder } from '../src/encoder/encoder.js';
import { projectRoot } from '../src/paths.js';
import { startServer } from '../test/helpers/server-process.js';
import { median } from './stats.js';

const { values: opts } = parseArgs({
  options: {
    bundle: { type: 'string', default: path.join(projectRoot, 'models', 'default') },
    texts: { type: 'string', default: '1000' },
    'skip-torch': { type: 'boolean', default: false },
    rounds: { type: 'string', default: '3' },
  },
});

const corpus = path.resolve(projectRoot, '..', 'shared', 'datasets', 'msmarco-5k', 'corpus.jsonl');
if (!existsSync(corpus)) {
  console.log(`bench:encode skipped: ${corpus} not found (the benchmark needs the real passages)`);
  process.exit(0);
}
const count = Number(opts.texts);
if (!Number.isInteger(count) || count < 32) {
  console.error('bench:encode: --texts must be an integer of at least 32 (stage (d) runs 32 concurrent requests)');
  process.exit(2);
}
const texts = readFileSync(corpus, 'utf8')
  .split('\n')
  .filter((l) => l.trim())
  .slice(0, count)
  .map((l) => (JSON.parse(l) as { text: string }).text);

type Results = Record<string, number>;
let results: Results = {};
const record = (name: string, textsPerSecond: number) => {
  results[name] = textsPerSecond;
  console.log(`  ${name.padEnd(38)} ${textsPerSecond.toFixed(1).padStart(8)} texts/s`);
};

const rounds = Number(opts.rounds);
console.log(`bench:encode — ${texts.length} MS MARCO passages, bundle ${opts.bundle}, ${rounds} round(s)`);

/** (a) the service's encoder in-process. */
async function inProcess(): Promise<void> {
  const bundle = await loadBundle(opts.bundle);
  const encoder = await createEncoder(bundle, loadConfig({}));
  await encoder.embed(texts.slice(0, 16), { inputType: 'document', truncate: true });
  const { tokens } = await encoder.embed(texts, { inputType: 'document', truncate: true });
  console.log(`  (${(tokens.reduce((a, b) => a + b, 0) / tokens.length).toFixed(1)} tokens a text on average)`);
  for (const batch of [1, 8, 32]) {
    const start = performance.now();
    for (let i = 0; i < texts.length; i += batch) {
      await encoder.embed(texts.slice(i, i + batch), { inputType: 'document', truncate: true });
    }
    record(`(a) in-process, calls of ${batch}`, texts.length / ((performance.now() - start) / 1000));
  }
  await encoder.close();
}

/** (b) the same graph in Python onnxruntime; (c) sentence-transformers unless skipped. */
function python(skipTorch: boolean): void {
  const dir = mkdtempSync(path.join(tmpdir(), 'qembed-bench-'));
  const textsFile = path.join(dir, 'texts.json');
  writeFileSync(textsFile, JSON.stringify(texts));
  const python = execFileSync(path.join(projectRoot, 'scripts', 'worker-env'), { encoding: 'utf8' }).trim();
  const args = [path.join(projectRoot, 'bench', 'encode_reference.py'), '--bundle', opts.bundle, '--texts', textsFile];
  if (skipTorch) args.push('--skip-torch');
  const out = JSON.parse(execFileSync(python, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })) as Record<string, Record<string, number>>;
  rmSync(dir, { recursive: true, force: true });
  for (const [b, v] of Object.entries(out.onnxruntime ?? {})) record(`(b) Python onnxruntime, batch ${b}`, v);
  for (const [b, v] of Object.entries(out.onnxruntime_sorted ?? {})) record(`(b) Python onnxruntime sorted, batch ${b}`, v);
  for (const [b, v] of Object.entries(out.sentence_transformers ?? {})) record(`(c) sentence-transformers, batch ${b}`, v);
}

/** (d) the service over HTTP with autocannon. */
async function http(): Promise<void> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'qembed-bench-data-'));
  const server = await startServer({ QEMBED_MODEL_DIR: opts.bundle, QEMBED_DATA_DIR: dataDir, QEMBED_LOG_LEVEL: 'warn' }, 120_000);
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
    if (result.non2xx > 0 || result.errors > 0) console.log(`  warning: ${result.non2xx} non-2xx, ${result.errors} errors`);
    record(`(d) HTTP, ${connections} concurrent`, result.requests.total / (result.duration));
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
  for (const name of names) console.log(`  ${name.padEnd(38)} ${median(perRound.map((r) => r[name] ?? NaN)).toFixed(1).padStart(8)} texts/s`);
}

for (const r of perRound) {
  r['(b) best Python onnxruntime, batch 32'] = Math.max(r['(b) Python onnxruntime, batch 32'] ?? 0, r['(b) Python onnxruntime sorted, batch 32'] ?? 0);
}
// (c) runs in the first round only: its ratio is taken there.
const ratio = (a: string, b: string) => median(perRound.map((r) => (r[a] && r[b] ? r[a]! / r[b]! : NaN)));
// The strict target compares with Python batches of texts sorted by length over the whole
// corpus: padding-free batches the service cannot form, since it sees 32 texts per call.
console.log(`\nratios (targets from issue 2)${rounds > 1 ? ', median of the per-round ratios' : ''}:`);
const show = (label: string, value: number, target?: number) =>
  console.log(`  ${label.padEnd(58)} ${value.toFixed(2)}${target ? `  (target ≥ ${target}: ${value >= target ? 'met' : 'MISSED'})` : ''}`);
show('(a) calls of 32 / (b) best Python onnxruntime batch 32', ratio('(a) in-process, calls of 32', '(b) best Python onnxruntime, batch 32'), 0.9);
show('(a) calls of 32 / (b) Python batch 32, the texts as given', ratio('(a) in-process, calls of 32', '(b) Python onnxruntime, batch 32'));
show('(a) calls of 1 / (b) Python batch 1', ratio('(a) in-process, calls of 1', '(b) Python onnxruntime, batch 1'));
show('(d) HTTP 32 concurrent / (a) calls of 32', ratio('(d) HTTP, 32 concurrent', '(a) in-process, calls of 32'), 0.7);
show('(d) HTTP 1 concurrent / (a) calls of 1', ratio('(d) HTTP, 1 concurrent', '(a) in-process, calls of 1'));
show('(a) calls of 32 / (c) sentence-transformers batch 32', ratio('(a) in-process, calls of 32', '(c) sentence-transformers, batch 32'));
