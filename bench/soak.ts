/**
 * npm run soak — minutes of mixed load on a real service process: /encode (1 to 8 texts),
 * ingestion (PUT batches of 16 documents) and /search, from concurrent clients. Every 10 s it
 * prints the requests and errors by status, latency percentiles per operation and the server's
 * resident memory; at the end, the totals. Not part of the test suite: it measures.
 *
 * With --activate-after S it activates the other bundle S seconds in, so the 10-second lines
 * show what the background re-encoding of the soak's collection costs the requests.
 *
 * Options: --minutes N (default 5), --connections N (default 16), --bundle DIR (default: the
 * service's served bundle, else the tiny test bundle), --models DIR (default ./models),
 * --activate-after S.
 *
 * --smoke: a run of seconds that proves the soak works end to end (test/bench/smoke.test.ts runs
 * it): 3 seconds, 4 connections, the tiny test bundle, its own empty models folder; it exits 1
 * when a request failed (other than 429) or the server did not exit 0. Its figures mean nothing.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { processConfig } from '../src/config.js';
import { loadBundle } from '../src/encoder/bundle.js';
import { currentCpu } from '../src/encoder/cpu.js';
import { modelDirForTools } from '../src/models/encoder-choice.js';
import { projectRoot } from '../src/paths.js';
import { startServer } from '../test/helpers/server-process.js';

const { values: opts } = parseArgs({
  options: {
    minutes: { type: 'string' },
    connections: { type: 'string' },
    bundle: { type: 'string' },
    models: { type: 'string' },
    'activate-after': { type: 'string' },
    smoke: { type: 'boolean', default: false },
  },
});

const smoke = opts.smoke;
const minutes = Number(opts.minutes ?? (smoke ? 0.05 : 5));
const connections = Number(opts.connections ?? (smoke ? 4 : 16));
const emptyModels = smoke && !opts.models ? mkdtempSync(path.join(tmpdir(), 'qembed-soak-models-')) : undefined;
opts.models ??= emptyModels ?? path.join(projectRoot, 'models');
let bundle = opts.bundle ?? (smoke ? path.join(projectRoot, 'test', 'fixtures', 'tiny-bundle') : undefined);
if (!bundle) {
  try {
    bundle = modelDirForTools({ ...processConfig(), modelsDir: opts.models });
  } catch {
    bundle = path.join(projectRoot, 'test', 'fixtures', 'tiny-bundle');
  }
}
const served = await loadBundle(bundle);
const dataDir = mkdtempSync(path.join(tmpdir(), 'qembed-soak-'));
const server = await startServer(
  { QEMBED_MODEL_DIR: path.resolve(bundle), QEMBED_MODELS_DIR: path.resolve(opts.models), QEMBED_DATA_DIR: dataDir, QEMBED_LOG_LEVEL: 'warn' },
  300_000,
);
const cpu = currentCpu();
console.log(`soak: ${minutes} min, ${connections} connections, bundle ${bundle} (${served.fingerprint}) on ${cpu.model} (${cpu.features.join(' ')})`);

const WORDS = 'the binary code of a document keeps only the signs of its embedding while int8 codes keep a coarse value for every dimension and both are stored'.split(' ');
const sentence = (seed: number, n: number) => Array.from({ length: n }, (_, i) => WORDS[(seed * 7 + i * 3) % WORDS.length]).join(' ');

type Op = 'encode' | 'ingest' | 'search';
interface Window {
  latencies: Record<Op, number[]>;
  statuses: Map<string, number>;
}
const fresh = (): Window => ({ latencies: { encode: [], ingest: [], search: [] }, statuses: new Map() });
let window = fresh();
const total = fresh();

async function call(op: Op, method: string, url: string, body: unknown): Promise<void> {
  const started = performance.now();
  let status: string;
  try {
    const res = await fetch(`${server.url}${url}`, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    await res.arrayBuffer();
    status = String(res.status);
  } catch {
    status = 'connection error';
  }
  const ms = performance.now() - started;
  for (const w of [window, total]) {
    w.latencies[op].push(ms);
    w.statuses.set(`${op} ${status}`, (w.statuses.get(`${op} ${status}`) ?? 0) + 1);
  }
}

await fetch(`${server.url}/collections`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'soak' }) });
let nextDoc = 0;
const deadline = Date.now() + minutes * 60_000;
const clients = Array.from({ length: connections }, async (_, c) => {
  for (let i = 0; Date.now() < deadline; i++) {
    const pick = (c + i) % 10;
    if (pick < 4) await call('encode', 'POST', '/encode', { inputs: Array.from({ length: 1 + (i % 8) }, (_, k) => sentence(i + k, 12 + ((i + k) % 40))) });
    else if (pick < 6) {
      const documents = Array.from({ length: 16 }, () => {
        const id = nextDoc++;
        return { id: `doc-${id % 20_000}`, text: sentence(id, 20 + (id % 60)), metadata: { group: id % 5 } };
      });
      await call('ingest', 'PUT', '/collections/soak/documents', { documents });
    } else await call('search', 'POST', '/search', { collection: 'soak', query: sentence(i, 6), top_k: 10, ...(pick === 9 && { filter: { group: i % 5 } }) });
  }
});

const percentile = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
};
const rssMb = () => {
  try {
    const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.proc.pid}/status`, 'utf8'))?.[1]);
    return Math.round(kb / 1024);
  } catch {
    return NaN;
  }
};
const describe = (w: Window) =>
  (['encode', 'ingest', 'search'] as const)
    .map((op) => `${op} ${w.latencies[op].length} p50 ${percentile(w.latencies[op], 50).toFixed(0)} p99 ${percentile(w.latencies[op], 99).toFixed(0)} ms`)
    .join(' | ');
const errors = (w: Window) => [...w.statuses].filter(([k]) => !k.endsWith(' 200')).map(([k, n]) => `${k}: ${n}`).join(', ') || 'none';

const startRss = rssMb();
console.log(`RSS at start ${startRss} MB`);
const started = Date.now();
let activated = false;
const ticker = setInterval(() => {
  const t = Math.round((Date.now() - started) / 1000);
  console.log(`${String(t).padStart(5)} s  ${describe(window)}  errors: ${errors(window)}  RSS ${rssMb()} MB`);
  window = fresh();
  const after = opts['activate-after'];
  if (after !== undefined && !activated && t >= Number(after)) {
    activated = true;
    void (async () => {
      const models = (await (await fetch(`${server.url}/models`)).json()) as { models: { fingerprint: string; active: boolean }[] };
      const other = models.models.find((m) => !m.active && m.fingerprint);
      if (!other) return console.log('  (no other bundle to activate)');
      const res = await fetch(`${server.url}/models/${other.fingerprint}/activate`, { method: 'POST' });
      console.log(`  activated ${other.fingerprint}: ${res.status}; the soak collection is re-encoded in the background`);
    })();
  }
}, 10_000);
await Promise.all(clients);
clearInterval(ticker);
const endRss = rssMb();
const collection = (await (await fetch(`${server.url}/collections/soak`)).json()) as { documents: number; reencode: unknown };
console.log(`\ntotal over ${minutes} min: ${describe(total)}`);
console.log(`errors by status: ${errors(total)}`);
console.log(`RSS start ${startRss} MB, end ${endRss} MB; collection: ${collection.documents} documents${collection.reencode ? ' (re-encoding still running)' : ''}`);
const exit = await server.stop('SIGTERM');
console.log(`server exit: code ${exit.code}${exit.signal ? `, signal ${exit.signal}` : ''}`);
rmSync(dataDir, { recursive: true, force: true });
if (emptyModels) rmSync(emptyModels, { recursive: true, force: true });
if (smoke) {
  // A smoke run proves the paths work: any answer but 200 (or 429, the queue's bound) fails it.
  const failed = [...total.statuses].filter(([k]) => !k.endsWith(' 200') && !k.endsWith(' 429'));
  if (failed.length > 0 || exit.code !== 0 || total.latencies.search.length === 0) {
    console.error(`soak --smoke failed: ${failed.map(([k, n]) => `${k}: ${n}`).join(', ') || 'no failed request'}; server exit code ${exit.code}; ${total.latencies.search.length} searches`);
    process.exit(1);
  }
}
