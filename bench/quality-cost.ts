/**
 * npm run bench:quality-cost — what the background recall measurement (src/quality/) costs the
 * requests: two service processes over copies of one collection, one measuring (the default
 * QEMBED_QUALITY_SAMPLE and QEMBED_QUALITY_CPU_PERCENT) and one with the measurement off
 * (QEMBED_QUALITY_SAMPLE=0), loaded in turn with searches from enough concurrent clients to
 * saturate the machine. While one is loaded the other is frozen (SIGSTOP), so it takes no CPU;
 * rounds alternate which goes first. Short turns and many rounds: this machine's throughput drifts
 * by ±10% over tens of seconds (neighbours, clocks), which paired turns a few seconds apart cancel.
 * It prints each round's searches/s and ratio, the ratio measuring / off over all rounds with the
 * 95% interval of the per-round ratios' mean, and checks that the measuring process did measure
 * meanwhile.
 *
 * Options: --documents N (default 100,000 random vectors within the bundle's ranges),
 * --seconds S per turn (default 5), --rounds R (default 40), --connections C (default 16),
 * --bundle DIR (default: the served bundle), --cpu-percent P (the measuring process's
 * QEMBED_QUALITY_CPU_PERCENT; default the service's). --control: both processes with the measurement off,
 * the same procedure (its ratio is the bench's own noise and bias, to read the real one against). --smoke: 2,000 documents, 2 s, 1 round, a 25% share, the tiny
 * test bundle (test/bench/smoke.test.ts); its figures mean nothing.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { compose } from '../src/composition.js';
import { loadConfig, processConfig } from '../src/config.js';
import { loadBundle } from '../src/encoder/bundle.js';
import { currentCpu } from '../src/encoder/cpu.js';
import { modelDirForTools } from '../src/models/encoder-choice.js';
import { projectRoot } from '../src/paths.js';
import { xorshift32 } from '../test/helpers/random.js';
import { type ServerProcess, startServer } from '../test/helpers/server-process.js';
import { searchLoad } from './search-load.js';
import { meanInterval95 } from './stats.js';

const { values: opts } = parseArgs({
  options: {
    documents: { type: 'string' },
    seconds: { type: 'string' },
    rounds: { type: 'string' },
    connections: { type: 'string' },
    bundle: { type: 'string' },
    smoke: { type: 'boolean', default: false },
    control: { type: 'boolean', default: false },
    'cpu-percent': { type: 'string' },
  },
});
const smoke = opts.smoke;
const documents = Number(opts.documents ?? (smoke ? 2000 : 100_000));
const seconds = Number(opts.seconds ?? (smoke ? 2 : 5));
const rounds = Number(opts.rounds ?? (smoke ? 1 : 40));
// The smoke run's turns are too short to see a 1% share progress: it checks the plumbing at 25%.
const cpuPercent = opts['cpu-percent'] ?? (smoke ? '25' : undefined);
const connections = Number(opts.connections ?? (smoke ? 4 : 16));
const bundleDir = path.resolve(opts.bundle ?? (smoke ? path.join(projectRoot, 'test', 'fixtures', 'tiny-bundle') : modelDirForTools(processConfig())));
const bundle = await loadBundle(bundleDir);
const dim = bundle.dimension;
const cpu = currentCpu();
console.log(`bench:quality-cost: ${documents} documents (${dim} dimensions, bundle ${bundle.fingerprint}), ${rounds} rounds of ${seconds} s per process, ${connections} connections, on ${cpu.model}`);

// Random vectors within the bundle's calibration ranges: the measurement's cost depends on sizes, not on the values.
const next = xorshift32(11);
const { min, max } = bundle.ranges;
const vector = () => Float32Array.from({ length: dim }, (_, i) => min[i]! + (next() / 4294967296) * (max[i]! - min[i]!));

const work = mkdtempSync(path.join(tmpdir(), 'qembed-quality-cost-'));
const measuringDir = path.join(work, 'measuring');
const offDir = path.join(work, 'off');
{
  const parts = await compose(loadConfig({}, { dataDir: measuringDir, modelDir: bundleDir }), { database: 'configured', model: { dir: bundleDir } });
  parts.search.createCollection('bench');
  for (let i = 0; i < documents; i += 2048) {
    const batch = Array.from({ length: Math.min(2048, documents - i) }, (_, k) => ({ id: `d${i + k}`, vector: vector() }));
    await parts.search.upsertDocuments('bench', batch, { model: bundle.fingerprint });
  }
  await parts.close();
  cpSync(measuringDir, offDir, { recursive: true });
}

const env = { QEMBED_MODEL_DIR: bundleDir, QEMBED_LOG_LEVEL: 'warn', QEMBED_MODELS_DIR: path.join(work, 'models') };
const measuring = await startServer({ ...env, QEMBED_DATA_DIR: measuringDir, ...(opts.control && { QEMBED_QUALITY_SAMPLE: '0' }), ...(cpuPercent && { QEMBED_QUALITY_CPU_PERCENT: cpuPercent }) }, 300_000);
const off = await startServer({ ...env, QEMBED_DATA_DIR: offDir, QEMBED_QUALITY_SAMPLE: '0' }, 300_000);
const queries = Array.from({ length: 1000 }, () => JSON.stringify({ collection: 'bench', vector: Array.from(vector()), top_k: 10 }));

interface Quality {
  measured_at: string | null;
  measured_queries: number;
  pending: number;
  sampled_queries: number;
  measuring: { queries: number; scanned_documents: number; documents: number } | null;
}
const describe = (q: Quality) =>
  `${q.sampled_queries} sampled queries, ${q.measured_queries} measured, ${q.pending} pending` +
  (q.measuring ? `, measuring ${q.measuring.queries} (${q.measuring.scanned_documents} of ${q.measuring.documents} documents scanned)` : '');
const qualityOf = async (s: ServerProcess) => ((await (await fetch(`${s.url}/collections/bench`)).json()) as { quality: Quality }).quality;

const load = (s: ServerProcess, duration: number) => searchLoad(s.url, queries, connections, duration);

let failed = 0;
try {
  // Fill the measuring process's sample, so that it has queries to measure all through the load.
  await load(measuring, Math.max(1, Math.round(seconds / 2)));
  await load(off, Math.max(1, Math.round(seconds / 2)));
  const before = await qualityOf(measuring);
  console.log(`measuring process before the rounds: ${describe(before)}`);

  const totals = { measuring: 0, off: 0 };
  const ratios: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const order: [string, ServerProcess][] = round % 2 === 0 ? [['measuring', measuring], ['off', off]] : [['off', off], ['measuring', measuring]];
    const line: string[] = [];
    const rps = { measuring: 0, off: 0 };
    for (const [name, s] of order) {
      const other = s === measuring ? off : measuring;
      other.proc.kill('SIGSTOP');
      s.proc.kill('SIGCONT');
      const r = await load(s, seconds);
      failed += r.failed;
      totals[name as 'measuring' | 'off'] += r.rps;
      rps[name as 'measuring' | 'off'] = r.rps;
      line.push(`${name} ${r.rps.toFixed(1)} searches/s (p50 ${r.p50} ms)`);
    }
    ratios.push(rps.measuring / rps.off);
    console.log(`round ${round + 1}: ${line.join(', ')}; ratio ${(rps.measuring / rps.off).toFixed(3)}`);
  }
  measuring.proc.kill('SIGCONT');
  off.proc.kill('SIGCONT');
  const after = await qualityOf(measuring);
  console.log(`measuring process after: ${describe(after)}`);
  const ci = meanInterval95(ratios);
  const cost = (r: number) => `${(100 * (1 - r)).toFixed(1)}%`;
  console.log(`\nratio measuring / off (searches/s over ${rounds} rounds): ${(totals.measuring / totals.off).toFixed(3)}  (cost ${cost(totals.measuring / totals.off)})`);
  console.log(`mean of the per-round ratios: ${ci.mean.toFixed(3)}, 95% interval ${ci.low.toFixed(3)} to ${ci.high.toFixed(3)} (cost ${cost(ci.high)} to ${cost(ci.low)})`);
  // It measured while loaded: more queries measured or fewer pending (measured_queries alone can
  // drop when the estimate's basis moves from stand-in documents to served queries), or its scan
  // has gone further (a batch over a large collection takes minutes at its CPU share).
  const scanned = (q: Quality) => (q.measuring ? (q.measuring.queries * q.measuring.scanned_documents) / Math.max(1, q.measuring.documents) : 0);
  const ok =
    after.measured_queries > before.measured_queries ||
    after.pending < before.pending ||
    (after.measured_queries === before.measured_queries && after.pending === before.pending && scanned(after) > scanned(before));
  if (opts.control) console.log('control run: both processes had the measurement off ("measuring" is only a name)');
  else console.log(`check the measuring process measured during the load: ${ok ? 'ok' : 'FAILED'}`);
  console.log(`check no search failed: ${failed === 0 ? 'ok' : `FAILED (${failed})`}`);
  if ((!ok && !opts.control) || failed > 0) process.exitCode = 1;
} finally {
  for (const s of [measuring, off]) {
    s.proc.kill('SIGCONT');
    await s.stop();
  }
  rmSync(work, { recursive: true, force: true });
}
