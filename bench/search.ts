/**
 * npm run bench:search — search at 100k and 1M documents of 384-bit codes, in one run:
 *   (a) POST /search's work through the search service (vector query, top_k 10, rescore
 *       multiplier 4): Hamming first stage in memory, then the 40 candidates' int8 codes read
 *       from SQLite and rescored; p50/p99 of single queries, with the first stage and the
 *       rescoring apart;
 *   (b) the first stage alone (top 40) on the same index, and the same selection with a plain
 *       JavaScript popcount (SWAR) instead of the WebAssembly kernel, the alternative it beat;
 *   (c) FAISS IndexBinaryFlat (Python faiss-cpu) on the same codes, single queries, 1 and 2
 *       threads — and a check that it finds the same top-40 distances;
 *   (d) a float32 brute-force scan (dot products, top 10) of as many vectors, in JavaScript;
 *   (e) the memory of the loaded index against N × dim/8 bytes (target ≤ 1.2×), as the index
 *       accounts it and as V8's external memory (ArrayBuffers + WebAssembly) grew;
 *   (f) compact first stages (a collection's code_bits): the first stage alone and the index
 *       memory for each of --code-bits (the first N bits of the same codes), against 384 bits.
 *
 * Codes: the 5,000 MS MARCO passages of ../shared/datasets/msmarco-5k encoded with the bundle
 * (models/default; cached under .cache/bench-search/), the rest synthetic with the same
 * per-bit probabilities (independent bits). Synthetic documents reuse the int8 codes and float32
 * vectors of the real ones in turn: the work of rescoring and scanning does not depend on the
 * values. Queries: the 50 real MS MARCO queries, encoded as queries. Ratios are what to
 * compare (the machine is shared and noisy).
 *
 * Options: --bundle DIR, --sizes 100000,1000000, --searches N (default 400), --skip-faiss,
 * --code-bits 384,128,64.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config.js';
import { loadBundle } from '../src/encoder/bundle.js';
import { createEncoder, type Encoder } from '../src/encoder/encoder.js';
import { projectRoot } from '../src/paths.js';
import { createQuantizer, type Quantizer } from '../src/quantization/quantize.js';
import { createBinaryIndex } from '../src/store/memory-index/binary-index.js';
import { queryPlanes } from '../src/search/asymmetric.js';
import { createSearchService } from '../src/search/search-service.js';
import { openDatabase } from '../src/store/database.js';
import { createSqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { DocumentWrite } from '../src/store/store.js';
import { xorshift32 } from '../test/helpers/random.js';

const { values: opts } = parseArgs({
  options: {
    bundle: { type: 'string', default: path.join(projectRoot, 'models', 'default') },
    sizes: { type: 'string', default: '100000,1000000' },
    searches: { type: 'string', default: '400' },
    'skip-faiss': { type: 'boolean', default: false },
    'code-bits': { type: 'string', default: '384,128,64' },
  },
});
const sizes = opts.sizes.split(',').map(Number);
const searches = Number(opts.searches);
const codeLengths = opts['code-bits'].split(',').map(Number);
const DIM = 384;
const BYTES = DIM / 8;
const TOP_K = 10;
const MULTIPLIER = 4;

const fmt = (n: number) => n.toLocaleString('en-US');
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
}
const p50 = (v: number[]) => percentile(v, 0.5);
const p99 = (v: number[]) => percentile(v, 0.99);
const ms = (v: number) => `${v.toFixed(2)} ms`;

/** Deterministic synthetic data: uniform in [0, 1). */
function rng(seed: number) {
  const next = xorshift32(seed);
  return () => next() / 4294967296;
}

// --- Real passages and queries, encoded once and cached ------------------------------------
interface RealData {
  texts: string[];
  docs: Float32Array[];
  queries: Float32Array[];
  quantizer: Quantizer;
  fingerprint: string;
  source: string;
}

async function realData(): Promise<RealData> {
  const dataset = path.resolve(projectRoot, '..', 'shared', 'datasets', 'msmarco-5k');
  const readJsonl = (f: string) =>
    readFileSync(path.join(dataset, f), 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as { title?: string; text: string });
  if (!existsSync(path.join(opts.bundle, 'manifest.json')) || !existsSync(path.join(dataset, 'corpus.jsonl'))) {
    // Without the model or the passages: all synthetic, bits fair coins, ranges ±0.2.
    const next = rng(1);
    const random = () => Float32Array.from({ length: DIM }, () => next() - 0.5);
    return {
      texts: Array.from({ length: 5000 }, (_, i) => `synthetic passage ${i}`),
      docs: Array.from({ length: 5000 }, random),
      queries: Array.from({ length: 50 }, random),
      quantizer: createQuantizer({ min: new Float32Array(DIM).fill(-0.5), max: new Float32Array(DIM).fill(0.5) }),
      fingerprint: 'synthetic',
      source: 'synthetic only (no model bundle or no msmarco-5k)',
    };
  }
  const bundle = await loadBundle(opts.bundle);
  if (bundle.dimension !== DIM) throw new Error(`the bench wants a ${DIM}-dimension bundle; ${opts.bundle} has ${bundle.dimension}`);
  const texts = readJsonl('corpus.jsonl').map((r) => (r.title ? `${r.title}\n${r.text}` : r.text));
  const queryTexts = readJsonl('queries.jsonl').map((r) => r.text);
  const cacheDir = path.join(projectRoot, '.cache', 'bench-search');
  const cache = path.join(cacheDir, `${bundle.fingerprint}-${createHash('sha256').update(JSON.stringify([texts, queryTexts])).digest('hex').slice(0, 12)}.f32`);
  let flat: Float32Array;
  if (existsSync(cache)) {
    const buf = readFileSync(cache);
    flat = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  } else {
    console.log(`  encoding ${texts.length} passages and ${queryTexts.length} queries with ${bundle.manifest.name} (cached for next time)…`);
    const encoder = await createEncoder(bundle, loadConfig({}));
    const embed = async (list: string[], inputType: 'query' | 'document') => {
      const out: Float32Array[] = [];
      for (let i = 0; i < list.length; i += 256) out.push(...(await encoder.embed(list.slice(i, i + 256), { inputType, truncate: true })).vectors);
      return out;
    };
    const docs = await embed(texts, 'document');
    const queries = await embed(queryTexts, 'query');
    await encoder.close();
    flat = new Float32Array((docs.length + queries.length) * DIM);
    [...docs, ...queries].forEach((v, i) => flat.set(v, i * DIM));
    mkdirSync(cacheDir, { recursive: true });
    writeFileSync(cache, flat);
  }
  const vec = (i: number) => flat.subarray(i * DIM, (i + 1) * DIM);
  return {
    texts,
    docs: texts.map((_, i) => vec(i)),
    queries: queryTexts.map((_, i) => vec(texts.length + i)),
    quantizer: createQuantizer(bundle.ranges),
    fingerprint: bundle.fingerprint,
    source: `${texts.length} MS MARCO passages encoded with ${bundle.manifest.name} (${bundle.fingerprint})`,
  };
}

// --- The corpus of N codes ------------------------------------------------------------------
function buildCodes(real: RealData, n: number) {
  const q = real.quantizer;
  const realBinary = real.docs.map((v) => q.toUbinary(v));
  const realInt8 = real.docs.map((v) => q.toInt8(v));
  // P(bit i = 1) over the real codes, MSB-first as packed.
  const ones = new Float64Array(DIM);
  for (const code of realBinary) for (let i = 0; i < DIM; i++) ones[i]! += (code[i >> 3]! >> (7 - (i & 7))) & 1;
  const p = ones.map((c) => c / realBinary.length);
  const codes = new Uint8Array(n * BYTES);
  const next = rng(42);
  for (let j = 0; j < n; j++) {
    if (j < realBinary.length) {
      codes.set(realBinary[j]!, j * BYTES);
      continue;
    }
    for (let b = 0; b < BYTES; b++) {
      let byte = 0;
      for (let k = 0; k < 8; k++) if (next() < p[b * 8 + k]!) byte |= 0x80 >> k;
      codes[j * BYTES + b] = byte;
    }
  }
  return { codes, realInt8, meanOnes: ones.reduce((a, b) => a + b, 0) / realBinary.length / DIM };
}

function faiss(codes: Uint8Array, queryCodes: Uint8Array, k: number): { threads_1_ms: number[]; threads_2_ms: number[]; distances: number[][] } | undefined {
  if (opts['skip-faiss']) return undefined;
  const dir = mkdtempSync(path.join(tmpdir(), 'qembed-bench-faiss-'));
  try {
    writeFileSync(path.join(dir, 'codes.u8'), codes);
    writeFileSync(path.join(dir, 'queries.u8'), queryCodes);
    const python = execFileSync(path.join(projectRoot, 'scripts', 'worker-env'), { encoding: 'utf8' }).trim();
    const args = [path.join(projectRoot, 'bench', 'search_faiss.py'), '--codes', path.join(dir, 'codes.u8'), '--queries', path.join(dir, 'queries.u8')];
    args.push('--bytes', String(BYTES), '--k', String(k), '--threads', '1,2', '--repeat', String(1 + Math.ceil(searches / (queryCodes.length / BYTES))));
    return JSON.parse(execFileSync(python, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 * 1024 * 1024 }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The first stage's alternative: Hamming top-k with a SWAR popcount over Uint32 words in JS. */
function jsHammingTopK(words: Uint32Array, n: number, query: Uint32Array, k: number): number[] {
  const w = query.length;
  const pairs: [number, number][] = [];
  let thr = DIM;
  const prune = () => {
    pairs.sort((a, b) => a[1] - b[1] || a[0] - b[0]);
    pairs.length = k;
    thr = pairs[k - 1]![1] - 1;
  };
  for (let j = 0; j < n; j++) {
    let d = 0;
    for (let i = 0; i < w; i++) {
      let x = words[j * w + i]! ^ query[i]!;
      x -= (x >>> 1) & 0x55555555;
      x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
      d += Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
    }
    if (d <= thr) {
      pairs.push([j, d]);
      if (pairs.length >= 4 * k + 1024) prune();
    }
  }
  if (pairs.length > k) prune();
  return pairs.map((p) => p[1]).sort((a, b) => a - b);
}

/** Top-10 by dot product over n float32 vectors, a plain JavaScript loop. */
function float32Scan(vectors: Float32Array, n: number, query: Float32Array): number[] {
  const best = new Float64Array(TOP_K).fill(-Infinity);
  const ids = new Int32Array(TOP_K).fill(-1);
  for (let j = 0; j < n; j++) {
    const o = j * DIM;
    let s = 0;
    for (let i = 0; i < DIM; i++) s += vectors[o + i]! * query[i]!;
    if (s > best[TOP_K - 1]!) {
      let at = TOP_K - 1;
      while (at > 0 && best[at - 1]! < s) {
        best[at] = best[at - 1]!;
        ids[at] = ids[at - 1]!;
        at--;
      }
      best[at] = s;
      ids[at] = j;
    }
  }
  return Array.from(ids);
}

const gc = (globalThis as { gc?: () => void }).gc;
/** Memory outside V8's heap (ArrayBuffers, WebAssembly memories), once collections settle. */
const external = async () => {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 100)); // backing stores are freed off the main thread
  }
  return process.memoryUsage().external;
};

// --- Run ------------------------------------------------------------------------------------
const real = await realData();
console.log(`bench:search — ${DIM}-bit codes; real: ${real.source}; the rest synthetic with the same per-bit statistics`);
console.log(`  ${searches} single-query searches per size (the ${real.queries.length} real queries in turn), top_k ${TOP_K}, rescore_multiplier ${MULTIPLIER}\n`);
const queryCodes = new Uint8Array(real.queries.length * BYTES);
real.queries.forEach((q, i) => queryCodes.set(real.quantizer.toUbinary(q), i * BYTES));
const stubEncoder = { fingerprint: real.fingerprint, dimension: DIM, quantizer: real.quantizer, bundle: { manifest: { name: 'bench' } } } as unknown as Encoder;

const summary: Record<string, string>[] = [];
for (const n of sizes) {
  console.log(`N = ${fmt(n)}`);
  const { codes, realInt8, meanOnes } = buildCodes(real, n);
  console.log(`  codes built (${(meanOnes * 100).toFixed(1)}% of bits set on average)`);

  // The documents in SQLite, as the service stores them.
  const dir = mkdtempSync(path.join(tmpdir(), 'qembed-bench-search-'));
  const db = openDatabase({ file: path.join(dir, 'qembed.sqlite') });
  const store = createSqliteStore(db);
  const collection = store.createCollection('bench', real.fingerprint, DIM);
  let t = performance.now();
  for (let start = 0; start < n; start += 10_000) {
    const batch: DocumentWrite[] = [];
    for (let j = start; j < Math.min(n, start + 10_000); j++) {
      const text = j < real.texts.length ? real.texts[j]! : `synthetic passage ${j}`;
      batch.push({
        docId: `d${j}`,
        text,
        metadata: '{}',
        textSha256: createHash('sha256').update(text).digest('hex'),
        binaryCode: codes.subarray(j * BYTES, (j + 1) * BYTES),
        int8Code: realInt8[j % realInt8.length]!,
      });
    }
    store.writeBatch(collection.id, batch, []);
  }
  const writeSeconds = (performance.now() - t) / 1000;

  // Load the index as a server does at start; its memory.
  const externalBefore = await external();
  const service = createSearchService({ store, encoder: () => stubEncoder });
  t = performance.now();
  service.loadIndexes();
  const loadMs = performance.now() - t;
  const info = service.getCollection('bench');
  const externalDelta = (await external()) - externalBefore;
  const memoryRatio = info.memoryBytes! / (n * BYTES);
  // A second start on the same database: the snapshot the first load wrote (snapshot.ts).
  const restarted = createSqliteStore(db);
  t = performance.now();
  restarted.loadIndexes();
  const snapshotMs = performance.now() - t;
  const from = restarted.indexStats(collection.id)?.loadedFrom;
  console.log(`  SQLite: ${fmt(n)} documents written in ${writeSeconds.toFixed(1)} s (${fmt(Math.round(n / writeSeconds))}/s, no model); index loaded from the rows in ${loadMs.toFixed(0)} ms (snapshot written); next start from the ${from} in ${snapshotMs.toFixed(0)} ms`);
  console.log(`  (e) index memory ${mb(info.memoryBytes!)} = ${memoryRatio.toFixed(3)} × N × dim/8 (target ≤ 1.2); V8 external memory grew ${mb(externalDelta)}`);

  // (a) the service: first stage + rescoring from SQLite.
  const total: number[] = [];
  const first: number[] = [];
  const rescore: number[] = [];
  for (let i = -20; i < searches; i++) {
    const query = Array.from(real.queries[((i % real.queries.length) + real.queries.length) % real.queries.length]!);
    const t0 = performance.now();
    const r = await service.search({ collection: 'bench', vector: query, topK: TOP_K, rescoreMultiplier: MULTIPLIER });
    const elapsed = performance.now() - t0;
    if (i < 0) continue;
    total.push(elapsed);
    first.push(r.stats.firstStageMs);
    rescore.push(r.stats.rescoreMs);
  }
  console.log(`  (a) search, first stage + rescore: p50 ${ms(p50(total))}  p99 ${ms(p99(total))}   [first stage p50 ${ms(p50(first))} p99 ${ms(p99(first))}; rescore p50 ${ms(p50(rescore))} p99 ${ms(p99(rescore))}]`);

  // (b) the first stage alone, on an index built from the same codes.
  const index = createBinaryIndex(BYTES, n, (function* () {
    for (let j = 0; j < n; j++) yield [j + 1, codes.subarray(j * BYTES, (j + 1) * BYTES)] as [number, Uint8Array];
  })());
  const firstAlone: number[] = [];
  const ourDistances: number[][] = [];
  for (let i = -20; i < searches; i++) {
    const qi = ((i % real.queries.length) + real.queries.length) % real.queries.length;
    const t0 = performance.now();
    const r = index.search(queryCodes.subarray(qi * BYTES, (qi + 1) * BYTES), TOP_K * MULTIPLIER);
    const elapsed = performance.now() - t0;
    if (i >= 0) firstAlone.push(elapsed);
    if (i >= 0 && i < 10) ourDistances[i] = r.distances;
  }
  console.log(`  (b) first stage alone (top ${TOP_K * MULTIPLIER}): p50 ${ms(p50(firstAlone))}  p99 ${ms(p99(firstAlone))}`);
  // The asymmetric first stage (4-bit query against the sign bits): its cost against Hamming's.
  const asymTimes: number[] = [];
  for (let i = -20; i < searches; i++) {
    const qi = ((i % real.queries.length) + real.queries.length) % real.queries.length;
    const planes = queryPlanes(real.queries[qi]!);
    const t0 = performance.now();
    index.search(queryCodes.subarray(qi * BYTES, (qi + 1) * BYTES), TOP_K * MULTIPLIER, undefined, planes);
    if (i >= 0) asymTimes.push(performance.now() - t0);
  }
  console.log(`      asymmetric first stage (4-bit query): p50 ${ms(p50(asymTimes))}  p99 ${ms(p99(asymTimes))} = ${(p50(asymTimes) / p50(firstAlone)).toFixed(1)}× Hamming`);
  // (f) compact first stages: the first `bits` bits of the same codes, as a collection with
  // code_bits keeps them.
  const compact: string[] = [];
  for (const bits of codeLengths) {
    const bytes = bits / 8;
    const small = createBinaryIndex(bytes, n, (function* () {
      for (let j = 0; j < n; j++) yield [j + 1, codes.subarray(j * BYTES, j * BYTES + bytes)] as [number, Uint8Array];
    })());
    const times: number[] = [];
    for (let i = -20; i < searches; i++) {
      const qi = ((i % real.queries.length) + real.queries.length) % real.queries.length;
      const t0 = performance.now();
      small.search(queryCodes.subarray(qi * BYTES, qi * BYTES + bytes), TOP_K * MULTIPLIER);
      if (i >= 0) times.push(performance.now() - t0);
    }
    const memory = small.memoryBytes();
    compact.push(`${bits} bits: p50 ${ms(p50(times))} (${(p50(times) / p50(firstAlone)).toFixed(2)}× 384), memory ${mb(memory)} (${(memory / index.memoryBytes()).toFixed(2)}×)`);
  }
  console.log(`  (f) compact first stages (top ${TOP_K * MULTIPLIER}): ${compact.join('; ')}`);
  const words = new Uint32Array(codes.buffer, codes.byteOffset, codes.length / 4);
  const jsTimes: number[] = [];
  let jsAgrees = true;
  for (let i = -3; i < 20; i++) {
    const qi = (i + real.queries.length) % real.queries.length;
    const qWords = new Uint32Array(queryCodes.slice(qi * BYTES, (qi + 1) * BYTES).buffer);
    const t0 = performance.now();
    const d = jsHammingTopK(words, n, qWords, TOP_K * MULTIPLIER);
    if (i >= 0) jsTimes.push(performance.now() - t0);
    if (i >= 0 && i < 10) jsAgrees &&= JSON.stringify(d) === JSON.stringify(ourDistances[i]);
  }
  console.log(`      the same in plain JavaScript (SWAR popcount): p50 ${ms(p50(jsTimes))} = ${(p50(jsTimes) / p50(firstAlone)).toFixed(1)}× the WebAssembly kernel; same distances: ${jsAgrees ? 'yes' : 'NO'}`);

  // (c) FAISS on the same codes.
  const f = faiss(codes, queryCodes, TOP_K * MULTIPLIER);
  if (f) {
    const same = f.distances.every((d, i) => JSON.stringify(d) === JSON.stringify(ourDistances[i]));
    console.log(`  (c) FAISS IndexBinaryFlat: 1 thread p50 ${ms(p50(f.threads_1_ms))} p99 ${ms(p99(f.threads_1_ms))}; 2 threads p50 ${ms(p50(f.threads_2_ms))} p99 ${ms(p99(f.threads_2_ms))}; same top-${TOP_K * MULTIPLIER} distances: ${same ? 'yes' : 'NO'}`);
  }

  // (d) float32 brute force over as many vectors.
  db.close();
  rmSync(dir, { recursive: true, force: true });
  const vectors = new Float32Array(n * DIM);
  for (let j = 0; j < n; j++) vectors.set(real.docs[j % real.docs.length]!, j * DIM);
  const scans: number[] = [];
  for (let i = -3; i < 10; i++) {
    const t0 = performance.now();
    float32Scan(vectors, n, real.queries[(i + real.queries.length) % real.queries.length]!);
    if (i >= 0) scans.push(performance.now() - t0);
  }
  console.log(`  (d) float32 brute force (JS, ${mb(vectors.byteLength)}): p50 ${ms(p50(scans))}`);

  const row: Record<string, string> = {
    N: fmt(n),
    'search p50 / p99': `${ms(p50(total))} / ${ms(p99(total))}`,
    'first stage p50': ms(p50(firstAlone)),
    'asymmetric / Hamming': `${(p50(asymTimes) / p50(firstAlone)).toFixed(1)}×`,
    'JS loop / first stage': `${(p50(jsTimes) / p50(firstAlone)).toFixed(1)}×`,
    'memory / (N·dim/8)': memoryRatio.toFixed(3),
    'float32 scan / search (p50)': `${(p50(scans) / p50(total)).toFixed(1)}×`,
  };
  if (f) row['first stage / FAISS 1 thread (p50)'] = (p50(firstAlone) / p50(f.threads_1_ms)).toFixed(2);
  summary.push(row);
  console.log('');
}

console.log('summary (targets: first stage ≤ 1.5 × FAISS; memory ≤ 1.2 × N × dim/8):');
console.table(summary);
