/**
 * npm run bench:fit-cost — what a transform fit running beside the service costs its searches
 * (issue 24: foreground throughput within 10% while a 100k-document fit runs). One service
 * process over a collection, loaded with searches from enough concurrent clients to saturate the
 * machine, in paired turns: one with a fit running (the worker's fit-transform on 100,000
 * documents, QAT, as a fit job runs it: 1 torch thread under SCHED_IDLE at niceness 10; --priority
 * nice: niceness 10 alone), one with the fit frozen
 * (SIGSTOP: it takes no CPU). Rounds alternate which turn goes first; each round's ratio of
 * searches/s, their mean with a 95% interval, and how far the fit got.
 *
 * Options: --documents N (service collection, default 100,000), --fit-documents N (default
 * 100,000), --seconds S per turn (default 5), --rounds R (default 20), --connections C (default
 * 16), --python PY (the worker's Python; default $(scripts/worker-env)). --smoke: 2,000 documents,
 * a 2,000-document ITQ fit, 2 s, 1 round, the tiny bundle; its figures mean nothing.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { compose } from '../src/composition.js';
import { loadConfig, processConfig } from '../src/config.js';
import { loadBundle } from '../src/encoder/bundle.js';
import { currentCpu } from '../src/encoder/cpu.js';
import { writeNpy } from '../src/files/npy.js';
import { modelDirForTools } from '../src/models/encoder-choice.js';
import { projectRoot } from '../src/paths.js';
import { xorshift32 } from '../test/helpers/random.js';
import { startServer } from '../test/helpers/server-process.js';
import { searchLoad } from './search-load.js';
import { meanInterval95 } from './stats.js';

const { values: opts } = parseArgs({
  options: {
    documents: { type: 'string' },
    'fit-documents': { type: 'string' },
    seconds: { type: 'string' },
    rounds: { type: 'string' },
    connections: { type: 'string' },
    python: { type: 'string' },
    priority: { type: 'string' },
    smoke: { type: 'boolean', default: false },
  },
});
const smoke = opts.smoke;
const documents = Number(opts.documents ?? (smoke ? 2000 : 100_000));
const fitDocuments = Number(opts['fit-documents'] ?? (smoke ? 2000 : 100_000));
const seconds = Number(opts.seconds ?? (smoke ? 2 : 5));
const rounds = Number(opts.rounds ?? (smoke ? 1 : 20));
const connections = Number(opts.connections ?? (smoke ? 4 : 16));
// How the fit yields: `idle` (SCHED_IDLE, what a fit job does: it runs only on a CPU nothing else wants) or `nice` (niceness 10 alone).
const priority = opts.priority ?? 'idle';
if (!['idle', 'nice'].includes(priority)) throw new Error(`--priority ${priority}: idle or nice`);
const python = opts.python ?? execFileSync(path.join(projectRoot, 'scripts', 'worker-env'), { encoding: 'utf8' }).trim();
const bundleDir = path.resolve(smoke ? path.join(projectRoot, 'test', 'fixtures', 'tiny-bundle') : modelDirForTools(processConfig()));
const bundle = await loadBundle(bundleDir);
const dim = bundle.dimension;
console.log(
  `bench:fit-cost: searches over ${documents} documents (${dim} dimensions) with and without a ${fitDocuments}-document fit beside them, ${rounds} rounds of ${seconds} s per turn, ${connections} connections, on ${currentCpu().model}`,
);

const next = xorshift32(17);
const { min, max } = bundle.ranges;
const vector = () => Float32Array.from({ length: dim }, (_, i) => min[i]! + (next() / 4294967296) * (max[i]! - min[i]!));

const work = mkdtempSync(path.join(tmpdir(), 'qembed-fit-cost-'));
const dataDir = path.join(work, 'data');
{
  const parts = await compose(loadConfig({}, { dataDir, modelDir: bundleDir }), { database: 'configured', model: { dir: bundleDir } });
  parts.search.createCollection('bench');
  for (let i = 0; i < documents; i += 2048) {
    const batch = Array.from({ length: Math.min(2048, documents - i) }, (_, k) => ({ id: `d${i + k}`, vector: vector() }));
    await parts.search.upsertDocuments('bench', batch, { model: bundle.fingerprint });
  }
  await parts.close();
}
const fitVectors = path.join(work, 'fit.npy');
const data = new Float32Array(fitDocuments * dim);
for (let i = 0; i < fitDocuments; i++) data.set(vector(), i * dim);
writeNpy(fitVectors, { rows: fitDocuments, columns: dim, data });

// QEMBED_AUTO_FIT off: the only fit is the bench's.
const server = await startServer({ QEMBED_MODEL_DIR: bundleDir, QEMBED_DATA_DIR: dataDir, QEMBED_LOG_LEVEL: 'warn', QEMBED_AUTO_FIT: 'false', QEMBED_MODELS_DIR: path.join(work, 'models') }, 300_000);
const queries = Array.from({ length: 1000 }, () => JSON.stringify({ collection: 'bench', vector: Array.from(vector()), top_k: 10 }));

const load = (duration: number) => searchLoad(server.url, queries, connections, duration);

// As a fit job runs it (worker/qembed_worker/transform/job.py: lower_priority): one torch thread.
let fitLog = '';
let fitEnded: number | null = null;
const fit: ChildProcess = spawn(
  priority === 'idle' ? 'chrt' : 'nice',
  [...(priority === 'idle' ? ['--idle', '0', 'nice', '-n', '10'] : ['-n', '10']), python, '-m', 'qembed_worker', 'fit-transform', '--vectors', fitVectors, '--bits', smoke ? String(dim) : '128,64', '--method', smoke ? 'itq' : 'qat', '--holdout', smoke ? '200' : '1000', '--out', path.join(work, 'transform')],
  { cwd: path.join(projectRoot, 'worker'), stdio: ['ignore', 'pipe', 'pipe'] },
);
fit.stdout!.on('data', (c: Buffer) => (fitLog += c.toString()));
fit.stderr!.on('data', (c: Buffer) => (fitLog += c.toString()));
fit.on('exit', (code) => (fitEnded = code ?? 1));
fit.kill('SIGSTOP');

let failed = 0;
try {
  await load(Math.max(1, Math.round(seconds / 2))); // warm-up
  const ratios: number[] = [];
  const totals = { fitting: 0, frozen: 0 };
  let fittingSeconds = 0;
  for (let round = 0; round < rounds && fitEnded === null; round++) {
    const order = round % 2 === 0 ? (['fitting', 'frozen'] as const) : (['frozen', 'fitting'] as const);
    const rps = { fitting: 0, frozen: 0 };
    for (const turn of order) {
      fit.kill(turn === 'fitting' ? 'SIGCONT' : 'SIGSTOP');
      const r = await load(seconds);
      if (turn === 'fitting') fittingSeconds += seconds;
      failed += r.failed;
      rps[turn] = r.rps;
      totals[turn] += r.rps;
    }
    fit.kill('SIGSTOP');
    ratios.push(rps.fitting / rps.frozen);
    console.log(`round ${round + 1}: with the fit ${rps.fitting.toFixed(1)} searches/s, without ${rps.frozen.toFixed(1)}; ratio ${(rps.fitting / rps.frozen).toFixed(3)}`);
  }
  const ci = meanInterval95(ratios);
  const cost = (r: number) => `${(100 * (1 - r)).toFixed(1)}%`;
  console.log(`\nratio with / without the fit over ${ratios.length} rounds: ${(totals.fitting / totals.frozen).toFixed(3)} (cost ${cost(totals.fitting / totals.frozen)})`);
  console.log(`mean of the per-round ratios: ${ci.mean.toFixed(3)}, 95% interval ${ci.low.toFixed(3)} to ${ci.high.toFixed(3)} (cost ${cost(ci.high)} to ${cost(ci.low)})`);
  console.log(`the fit ran ${fittingSeconds} s beside the searches${fitEnded === null ? ' (not finished: the rounds covered part of it)' : ` and ended (exit ${fitEnded})`}`);
  console.log(`check no search failed: ${failed === 0 ? 'ok' : `FAILED (${failed})`}`);
  if (failed > 0 || (fitEnded !== null && fitEnded !== 0)) {
    console.log(fitLog);
    process.exitCode = 1;
  }
} finally {
  fit.kill('SIGCONT');
  fit.kill('SIGTERM');
  await server.stop();
  rmSync(work, { recursive: true, force: true });
}
