/**
 * npm run bench:search — search over N documents of 384-bit codes for each of --sizes
 * (default 100,000 and 1,000,000; `-- --sizes 1000000,10000000` for ten million), in one run:
 *
 *   build  the documents written to SQLite as the service stores them (codes precomputed, no
 *          model run), 1% of them with the metadata {"shard": 7}; then the index loaded as a
 *          start does: from the rows (which writes its snapshot), then from the snapshot;
 *   (a)    search, POST /search's work in this process (vector query, top_k 10,
 *          rescore_multiplier 4): p50/p99 with the first stage on one thread and split over
 *          QEMBED_SEARCH_THREADS (one per CPU), with the first stage and the rescoring apart;
 *   (b)    the first stage alone (top 40), one thread and split, against the plain C histogram
 *          scan of bench/reference-scan.c (compiled here, one core) and FAISS IndexBinaryFlat,
 *          on the same codes, checking that all find the same distances; the asymmetric first
 *          stage; the same selection in a plain JavaScript loop (up to 1M);
 *   (c)    memory: the index against N × dim/8 (+ 4 bytes a rowid);
 *   (d)    a metadata filter matching 1% of the documents: search p50/p99 and its filter step;
 *   (e)    a float32 brute force of as many vectors (when they fit in 2 GB);
 *   (f)    compact first stages (a collection's code_bits): the first N bits of the same codes;
 *   (g)    the server (`npm start`'s process) on the same database: start-up, resident memory,
 *          and POST /search over HTTP against the same search in process;
 * and once, (h): `qembed ingest` of precomputed vectors (.npy + ids) into SQLite, documents a second.
 *
 * Codes and queries: bench/search-data.ts. Every ratio compares figures of this run; the machine
 * is shared and noisy, so compare ratios, and say which CPU they came from.
 *
 * Options: --bundle DIR, --sizes N,N, --searches N (default 400), --skip-faiss, --skip-server,
 * --code-bits 384,128,64, --ingest-documents N (default 500000; 0 skips (h)), --dataset DIR (a
 * BEIR folder; default ../shared/datasets/msmarco-5k), --python PATH (for FAISS; default:
 * scripts/worker-env's).
 *
 * --smoke: a run of seconds that proves the benchmark works end to end (test/bench/smoke.test.ts
 * runs it): 2,000 documents, 5 searches a measure, 1,000 documents for (h). With no bundle or
 * dataset given it is synthetic, which skips (g) and (h). Its figures mean nothing. --help.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Encoder } from '../src/encoder/encoder.js';
import { projectRoot } from '../src/paths.js';
import { asymmetricQuery } from '../src/first-stage/asymmetric.js';
import { createBinaryIndex } from '../src/first-stage/binary-index.js';
import { createFirstStageIndex } from '../src/first-stage/first-stage.js';
import { keepInStep } from '../src/first-stage/in-step.js';
import { hammingQuery } from '../src/first-stage/query.js';
import { scanPool, setScanThreads } from '../src/first-stage/scan-pool.js';
import { createSearchService } from '../src/search/search-service.js';
import { openDatabase } from '../src/store/database.js';
import { createSqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { DocumentWrite } from '../src/store/store.js';
import { startServer } from '../test/helpers/server-process.js';
import { faiss, float32Scan, jsHammingTopK, referenceScan } from './search-baselines.js';
import { buildCodes, BYTES, DIM, realData } from './search-data.js';

const { values: opts } = parseArgs({
  options: {
    bundle: { type: 'string', default: path.join(projectRoot, 'models', 'default') },
    sizes: { type: 'string', default: '100000,1000000' },
    searches: { type: 'string', default: '400' },
    'skip-faiss': { type: 'boolean', default: false },
    'skip-server': { type: 'boolean', default: false },
    'code-bits': { type: 'string', default: '384,128,64' },
    'ingest-documents': { type: 'string', default: '500000' },
    dataset: { type: 'string' },
    python: { type: 'string' },
    smoke: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opts.help) {
  console.log(
    'npm run bench:search -- [--bundle DIR] [--sizes N,N] [--searches N] [--skip-faiss] [--skip-server] [--code-bits B,B] [--ingest-documents N] [--dataset DIR] [--python PATH] [--smoke]\n' +
      'Search over N documents of 384-bit codes: build, search, the first stage alone, memory, filters, compact codes, the server (bench/search.ts says what each measures).',
  );
  process.exit(0);
}
if (opts.smoke) Object.assign(opts, { sizes: '2000', searches: '5', 'ingest-documents': '1000' });
const sizes = opts.sizes.split(',').map(Number);
const searches = Number(opts.searches);
const codeLengths = opts['code-bits'].split(',').map(Number);
const TOP_K = 10;
const MULTIPLIER = 4;
const CANDIDATES = TOP_K * MULTIPLIER;
/** 1% of the documents carry {"shard": 7}: documents j with j % 100 === 7. */
const FILTER = { shard: 7 };

const fmt = (n: number) => n.toLocaleString('en-US');
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
}
const p50 = (v: number[]) => percentile(v, 0.5);
const p99 = (v: number[]) => percentile(v, 0.99);
const ms = (v: number) => `${v.toFixed(2)} ms`;
const pp = (v: number[]) => `p50 ${ms(p50(v))} p99 ${ms(p99(v))}`;
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;

/** Runs `fn` for `count` queries in turn after 20 warm-up runs; the milliseconds of each. */
async function timeQueries(fn: (qi: number) => unknown, count = searches): Promise<number[]> {
  const times: number[] = [];
  for (let i = -20; i < count; i++) {
    const qi = ((i % real.queries.length) + real.queries.length) % real.queries.length;
    const t0 = performance.now();
    await fn(qi);
    if (i >= 0) times.push(performance.now() - t0);
  }
  return times;
}

function writeDocuments(file: string, n: number, codes: Uint8Array, realInt8: Int8Array[]): number {
  const db = openDatabase({ file });
  // Written as the service writes: the first stage kept in step.
  const raw = createSqliteStore(db);
  const store = keepInStep(raw, createFirstStageIndex(raw));
  const { collection } = store.createCollection('bench', real.fingerprint, DIM);
  for (let start = 0; start < n; start += 10_000) {
    const batch: DocumentWrite[] = [];
    for (let j = start; j < Math.min(n, start + 10_000); j++) {
      const text = j < real.texts.length ? real.texts[j]! : `synthetic passage ${j}`;
      batch.push({
        docId: `d${j}`,
        text,
        metadata: j % 100 === FILTER.shard ? '{"shard":7}' : '{}',
        textSha256: createHash('sha256').update(text).digest('hex'),
        binaryCode: codes.subarray(j * BYTES, (j + 1) * BYTES),
        int8Code: realInt8[j % realInt8.length]!,
      });
    }
    store.writeBatch(collection.id, batch, []);
  }
  db.close();
  return collection.id;
}

/** Opens the database as a start does and loads its indexes: the store, its first stage and the milliseconds it took. */
function start(file: string) {
  const db = openDatabase({ file });
  const store = createSqliteStore(db);
  const firstStage = createFirstStageIndex(store);
  const t = performance.now();
  firstStage.loadIndexes();
  return { db, store, firstStage, loadMs: performance.now() - t };
}

/** POST of a JSON body over `agent`; the status and the body. */
function postJson(url: string, body: string, agent: Agent): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Whether two scans found the same distances for the queries both recorded (FAISS records 10, the others up to --searches). */
const sameDistances = (a: number[][], b: number[][]) => {
  const n = Math.min(a.length, b.length);
  return n > 0 && a.slice(0, n).every((d, i) => JSON.stringify(d) === JSON.stringify(b[i]));
};

// --- Run ------------------------------------------------------------------------------------
const real = await realData(opts.bundle, opts.dataset);
const threads = scanPool().threads;
console.log(`bench:search — ${DIM}-bit codes; real: ${real.source}; the rest synthetic with the same per-bit statistics`);
console.log(`  CPU: ${cpus()[0]?.model ?? 'unknown'} (${cpus().length} available); first stage split over ${threads} threads (QEMBED_SEARCH_THREADS)`);
console.log(`  ${searches} single-query searches per measure (the ${real.queries.length} real queries in turn), top_k ${TOP_K}, rescore_multiplier ${MULTIPLIER}\n`);
const queryCodes = new Uint8Array(real.queries.length * BYTES);
real.queries.forEach((q, i) => queryCodes.set(real.quantizer.toUbinary(q), i * BYTES));
const queryCode = (qi: number) => queryCodes.subarray(qi * BYTES, (qi + 1) * BYTES);
const stubEncoder = { fingerprint: real.fingerprint, dimension: DIM, quantizer: real.quantizer, bundle: { fingerprint: real.fingerprint, manifest: { name: 'bench' } } } as unknown as Encoder;

const summary: Record<string, string>[] = [];
for (const n of sizes) {
  console.log(`N = ${fmt(n)}`);
  const { codes, realInt8, meanOnes } = buildCodes(real, n);
  const dir = mkdtempSync(path.join(tmpdir(), 'qembed-bench-search-'));
  const file = path.join(dir, 'qembed.sqlite');
  let t = performance.now();
  const collectionId = writeDocuments(file, n, codes, realInt8);
  const buildSeconds = (performance.now() - t) / 1000;
  const fromRows = start(file);
  fromRows.db.close();
  const { db, store, firstStage, loadMs } = start(file);
  const loadedFrom = firstStage.indexStats(collectionId)?.loadedFrom;
  console.log(
    `  build: ${fmt(n)} documents written to SQLite in ${buildSeconds.toFixed(1)} s (${fmt(Math.round(n / buildSeconds))}/s, codes given, ${(meanOnes * 100).toFixed(1)}% of bits set); ` +
      `index loaded from the rows in ${fromRows.loadMs.toFixed(0)} ms, from the ${loadedFrom} in ${loadMs.toFixed(0)} ms (${(loadMs / (n / 1e6)).toFixed(0)} ms per million)`,
  );
  const service = createSearchService({ store, firstStage, encoder: () => stubEncoder });
  const search = (qi: number, filter?: typeof FILTER) =>
    service.search({ collection: 'bench', vector: Array.from(real.queries[qi]!), topK: TOP_K, rescoreMultiplier: MULTIPLIER, ...(filter ? { filter } : {}) });

  // (a) search, first stage on 1 thread, then split.
  const searchTimes: Record<'one' | 'split', { total: number[]; first: number[]; rescore: number[] }> = {} as never;
  for (const mode of ['one', 'split'] as const) {
    setScanThreads(mode === 'one' ? 1 : 0);
    const first: number[] = [];
    const rescore: number[] = [];
    const total = await timeQueries(async (qi) => {
      const r = await search(qi);
      first.push(r.stats.firstStageMs);
      rescore.push(r.stats.rescoreMs);
    });
    searchTimes[mode] = { total, first: first.slice(20), rescore: rescore.slice(20) };
  }
  const { one, split } = searchTimes;
  console.log(`  (a) search, 1 thread: ${pp(one.total)} [first stage p50 ${ms(p50(one.first))}, rescore p50 ${ms(p50(one.rescore))}]`);
  console.log(`      search, ${threads} threads: ${pp(split.total)} [first stage p50 ${ms(p50(split.first))}, rescore p50 ${ms(p50(split.rescore))}] = ${ratio(p50(split.total), p50(one.total))} 1 thread`);

  // (b) the first stage alone, on the service's index.
  const distances: Record<'one' | 'split', number[][]> = { one: [], split: [] };
  const firstAlone: Record<'one' | 'split', number[]> = { one: [], split: [] };
  for (const mode of ['one', 'split'] as const) {
    setScanThreads(mode === 'one' ? 1 : 0);
    let i = 0;
    firstAlone[mode] = await timeQueries((qi) => {
      const r = firstStage.nearest(collectionId, hammingQuery(queryCode(qi)), CANDIDATES);
      if (i++ >= 20 && distances[mode].length < 10) distances[mode].push(r.distances);
    });
  }
  const reference = referenceScan(codes, queryCodes, CANDIDATES, searches);
  console.log(`  (b) first stage alone (top ${CANDIDATES}): 1 thread ${pp(firstAlone.one)}; ${threads} threads ${pp(firstAlone.split)}; same distances: ${sameDistances(distances.one, distances.split) ? 'yes' : 'NO'}`);
  if (reference) {
    console.log(
      `      plain C histogram scan (${reference.compiler}, 1 core): ${pp(reference.ms)}; qembed 1 thread / C = ${ratio(p50(firstAlone.one), p50(reference.ms))}, ` +
        `${threads} threads / C = ${ratio(p50(firstAlone.split), p50(reference.ms))}; same distances: ${sameDistances(reference.distances, distances.one) ? 'yes' : 'NO'}`,
    );
  } else console.log('      NOTICE: no C compiler (cc, gcc, clang): the reference scan was not run');
  setScanThreads(0);
  const asym = await timeQueries((qi) => firstStage.nearest(collectionId, asymmetricQuery(real.queries[qi]!), CANDIDATES));
  console.log(`      asymmetric first stage (4-bit query), ${threads} threads: ${pp(asym)} = ${ratio(p50(asym), p50(firstAlone.split))} Hamming`);
  const f = opts['skip-faiss'] ? undefined : faiss(codes, queryCodes, CANDIDATES, searches, opts.python);
  if (f) {
    console.log(
      `      FAISS IndexBinaryFlat: 1 thread ${pp(f.threads_1_ms)}; 2 threads ${pp(f.threads_2_ms)}; qembed 1 thread / FAISS 1 thread = ${ratio(p50(firstAlone.one), p50(f.threads_1_ms))}; ` +
        `same distances: ${sameDistances(f.distances, distances.one) ? 'yes' : 'NO'}`,
    );
  }
  let jsRatio = '';
  if (n <= 1_000_000) {
    const words = new Uint32Array(codes.buffer, codes.byteOffset, codes.length / 4);
    const js = await timeQueries((qi) => jsHammingTopK(words, n, new Uint32Array(queryCodes.slice(qi * BYTES, (qi + 1) * BYTES).buffer), CANDIDATES), 10);
    jsRatio = ratio(p50(js), p50(firstAlone.one));
    console.log(`      the same in a plain JavaScript loop (SWAR popcount): p50 ${ms(p50(js))} = ${jsRatio} the WebAssembly kernel on 1 thread`);
  }

  // (c) memory.
  const stats = firstStage.indexStats(collectionId)!;
  const memoryRatio = stats.memoryBytes / (n * BYTES);
  const bound = 1.2 * n * BYTES + 4 * n;
  console.log(`  (c) index memory ${mb(stats.memoryBytes)} = ${memoryRatio.toFixed(3)} × N × dim/8 (bound 1.2 × N × dim/8 + 4 bytes a rowid = ${mb(bound)}: ${stats.memoryBytes <= bound ? 'within' : 'ABOVE'})`);

  // (d) a filter matching 1% of the documents.
  const filterSteps: number[] = [];
  const filtered = await timeQueries(async (qi) => filterSteps.push((await search(qi, FILTER)).stats.filterMs));
  console.log(`  (d) search with a filter matching 1% (${fmt(Math.ceil(n / 100))} documents): ${pp(filtered)} [filter step p50 ${ms(p50(filterSteps.slice(20)))}]`);

  // (f) compact first stages.
  const compact: string[] = [];
  for (const bits of codeLengths) {
    const bytes = bits / 8;
    const packed = new Uint8Array(n * bytes);
    for (let j = 0; j < n; j++) packed.set(codes.subarray(j * BYTES, j * BYTES + bytes), j * bytes);
    const small = createBinaryIndex(bytes, 0, [], { rowids: Uint32Array.from({ length: n }, (_, j) => j + 1), codes: packed });
    const times = await timeQueries((qi) => small.search(hammingQuery(queryCodes.subarray(qi * BYTES, qi * BYTES + bytes)), CANDIDATES));
    compact.push(`${bits} bits p50 ${ms(p50(times))} (${ratio(p50(times), p50(firstAlone.split))} 384), memory ${mb(small.memoryBytes())} (${ratio(small.memoryBytes(), stats.memoryBytes)})`);
    small.release();
  }
  console.log(`  (f) compact first stages (top ${CANDIDATES}, ${threads} threads): ${compact.join('; ')}`);

  // (e) float32 brute force over as many vectors.
  let floatRatio = '';
  if (n * DIM * 4 <= 2e9) {
    const vectors = new Float32Array(n * DIM);
    for (let j = 0; j < n; j++) vectors.set(real.docs[j % real.docs.length]!, j * DIM);
    const scans = await timeQueries((qi) => float32Scan(vectors, n, real.queries[qi]!, TOP_K), 10);
    floatRatio = ratio(p50(scans), p50(split.total));
    console.log(`  (e) float32 brute force (JavaScript, ${mb(vectors.byteLength)}): p50 ${ms(p50(scans))} = ${floatRatio} search`);
  } else console.log(`  (e) float32 brute force: skipped (${mb(n * DIM * 4)} of vectors)`);
  db.close();

  // (g) the server on the same database.
  let httpExtra = '';
  if (opts['skip-server'] || real.fingerprint === 'synthetic') console.log('  (g) server: skipped (--skip-server, or no model bundle)');
  else {
    t = performance.now();
    const server = await startServer({ QEMBED_DATA_DIR: dir, QEMBED_MODEL_DIR: opts.bundle, QEMBED_LOG_LEVEL: 'warn' }, 600_000);
    const startSeconds = (performance.now() - t) / 1000;
    try {
      // One keep-alive connection, request bodies written beforehand: what is timed is the
      // server's HTTP path (and the loopback), not the client's JSON encoding.
      const bodies = real.queries.map((q) => JSON.stringify({ collection: 'bench', vector: Array.from(q), top_k: TOP_K, rescore_multiplier: MULTIPLIER }));
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const http = await timeQueries(async (qi) => {
        const res = await postJson(`${server.url}/search`, bodies[qi]!, agent);
        if (res.status !== 200) throw new Error(`POST /search: ${res.status} ${res.text}`);
        JSON.parse(res.text);
      });
      agent.destroy();
      const rss = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.proc.pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024;
      httpExtra = `${(p50(http) - p50(split.total)).toFixed(2)} ms`;
      console.log(
        `  (g) server: up in ${startSeconds.toFixed(1)} s (model and index loaded); resident memory ${mb(rss)} (index ${mb(stats.memoryBytes)}); ` +
          `POST /search over HTTP ${pp(http)}: ${httpExtra} over the same search in process`,
      );
    } finally {
      await server.stop();
    }
  }
  rmSync(dir, { recursive: true, force: true });

  const row: Record<string, string> = {
    N: fmt(n),
    'build (docs/s)': fmt(Math.round(n / buildSeconds)),
    'load ms (rows / snapshot)': `${fromRows.loadMs.toFixed(0)} / ${loadMs.toFixed(0)}`,
    'search p50 1 thread / split': `${ms(p50(one.total))} / ${ms(p50(split.total))}`,
    'first stage p50 1 thread / split': `${ms(p50(firstAlone.one))} / ${ms(p50(firstAlone.split))}`,
    'first stage 1 thread / C': reference ? ratio(p50(firstAlone.one), p50(reference.ms)) : 'n/a',
    'memory / (N·dim/8)': memoryRatio.toFixed(3),
    'filter 1% p50': ms(p50(filtered)),
  };
  if (f) row['first stage 1 thread / FAISS 1 thread'] = ratio(p50(firstAlone.one), p50(f.threads_1_ms));
  if (httpExtra) row['HTTP − in process (p50)'] = httpExtra;
  if (jsRatio) row['JS loop / kernel'] = jsRatio;
  if (floatRatio) row['float32 scan / search'] = floatRatio;
  summary.push(row);
  console.log('');
}

// (h) ingest of precomputed vectors.
const ingestCount = Number(opts['ingest-documents']);
if (ingestCount > 0 && real.fingerprint !== 'synthetic') {
  const dir = mkdtempSync(path.join(tmpdir(), 'qembed-bench-ingest-'));
  try {
    // A float32 .npy of the real passages' vectors in turn, and their ids.
    const header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${ingestCount}, ${DIM}), }`;
    const padded = header.padEnd(Math.ceil((header.length + 11) / 64) * 64 - 11, ' ') + '\n';
    const head = Buffer.concat([Buffer.from([0x93]), Buffer.from('NUMPY'), Buffer.from([1, 0]), Buffer.from(Uint16Array.of(padded.length).buffer), Buffer.from(padded, 'latin1')]);
    const body = new Float32Array(ingestCount * DIM);
    for (let j = 0; j < ingestCount; j++) body.set(real.docs[j % real.docs.length]!, j * DIM);
    writeFileSync(path.join(dir, 'vectors.npy'), Buffer.concat([head, Buffer.from(body.buffer)]));
    writeFileSync(path.join(dir, 'ids.txt'), Array.from({ length: ingestCount }, (_, j) => `v${j}`).join('\n') + '\n');
    const run = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'src/cli/qembed.ts', 'ingest', '--collection', 'vectors', '--create', '--model', real.fingerprint, '--ids', path.join(dir, 'ids.txt'), '--data-dir', path.join(dir, 'data'), '--model-dir', opts.bundle, path.join(dir, 'vectors.npy')],
      { cwd: projectRoot, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
    );
    if (run.status !== 0) throw new Error(`qembed ingest failed: ${run.stderr}`);
    const result = JSON.parse(run.stdout.trim().split('\n').pop()!) as { documents: number; seconds: number };
    console.log(`(h) qembed ingest of ${fmt(result.documents)} precomputed vectors (.npy + ids) into SQLite: ${result.seconds.toFixed(1)} s = ${fmt(Math.round(result.documents / result.seconds))} documents/s\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log('summary (targets: first stage 1 thread ≤ 1.0 × the C scan; 10M search p50 ≤ 25 ms; memory ≤ 1.2 × N × dim/8 + 4N; filter 1% ≤ 50 ms at 10M; HTTP adds ≤ 1 ms):');
console.table(summary);
await scanPool().close();
