/**
 * npm run bench:recall-service — does the recall the service estimates (src/quality/) hold on
 * queries it never saw, and does `rescore_multiplier: "auto"` keep its target?
 *
 * The recall corpus (bench/recall/corpus.ts) goes into one collection per code length (384 and
 * 128 bits), grown through N = 5k, 20k, 100k and all, a seeded order of its passages, so each N
 * holds the ones before. The corpus's queries are split in two by a seeded shuffle:
 * - estimation queries are searched once, before the first N, as a user's would be: the
 *   collection's sample keeps up to QEMBED_QUALITY_SAMPLE of them, and at every N the service
 *   measures them again (the collection grew by more than a tenth), at full speed here
 *   (measureQuality; a server paces the same work in the background);
 * - held-out queries measure what is served: each one's exact int8 top 10 (`rescore: "exact"`)
 *   against what each multiplier returns, and what auto returns with the default target 0.99.
 * Printed per N, code length and first stage: the estimate with its interval against the
 * held-out recall at m = 1, 2, 4, 8, 16, the multiplier auto chose, its recall, and its search
 * p50 against multiplier 4 (in-process, vector queries: encoding excluded).
 *
 * Options: --bits 384,128 --sizes 5000,20000,100000,all --json FILE --page FILE.md (its section
 * of a page: scripts/doc-sections.ts) --docs (the record as docs/quality/recall-service.json and
 * the section of docs/quality.md) --record FILE (writes the page section from a saved record, no
 * measuring). --smoke: the smoke corpus and the tiny bundle, small sizes; checks only that
 * everything ran (test/bench/smoke.test.ts).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { compose } from '../src/composition.js';
import { loadConfig, processConfig } from '../src/config.js';
import { currentCpu } from '../src/encoder/cpu.js';
import { modelDirForTools } from '../src/models/encoder-choice.js';
import { projectRoot } from '../src/paths.js';
import { DEFAULT_TARGET_RECALL, RECALL_AT } from '../src/quality/estimate.js';
import type { FirstStage, SearchRequest } from '../src/search/types.js';
import { loadRecallCorpus } from './recall/corpus.js';
import { seededPermutation } from './recall/measure.js';
import { type ServiceRecord, type ServiceRow, serviceSectionMarkdown } from './recall/service-report.js';
import { RECALL_SERVICE, withSection } from '../scripts/doc-sections.js';
import { median } from './stats.js';

const { values: opts } = parseArgs({
  options: {
    bits: { type: 'string' },
    sizes: { type: 'string' },
    json: { type: 'string' },
    page: { type: 'string' },
    docs: { type: 'boolean', default: false },
    record: { type: 'string' },
    smoke: { type: 'boolean', default: false },
  },
});
const smoke = opts.smoke;
if (opts.docs) {
  if (smoke) throw new Error('--docs writes figures into docs/: not from a --smoke run (give --page, --json elsewhere)');
  opts.json ??= path.join(projectRoot, 'docs', 'quality', 'recall-service.json');
  opts.page ??= path.join(projectRoot, 'docs', 'quality.md');
}
/** Writes the record's section into --page. */
function writePage(record: ServiceRecord) {
  if (!opts.page) return;
  const doc = existsSync(opts.page) ? readFileSync(opts.page, 'utf8') : '';
  writeFileSync(opts.page, withSection(doc, RECALL_SERVICE, serviceSectionMarkdown(record)));
  console.log(`wrote the ${RECALL_SERVICE} section of ${opts.page}`);
}
if (opts.record) {
  writePage(JSON.parse(readFileSync(opts.record, 'utf8')) as ServiceRecord);
  process.exit(0);
}
const MULTIPLIERS = [1, 2, 4, 8, 16];
const STAGES: FirstStage[] = ['hamming', 'asymmetric'];
/** N from which the estimate must agree with the held-out recall (the target), and by how much. */
const AGREEMENT_FROM = 100_000;
const AGREEMENT = 0.015;

const bundleDir = smoke ? path.join(projectRoot, 'test', 'fixtures', 'tiny-bundle') : modelDirForTools(processConfig());
const corpus = await loadRecallCorpus({ bundleDir, smoke, log: (m) => console.log(`  ${m}`) });
const dim = corpus.dimension;
const total = corpus.passages.ids.length;
const bitsList = (opts.bits ?? (smoke ? `${dim}` : '384,128')).split(',').map(Number);
// The smoke corpus has a few dozen passages: a quarter, a half and all of them.
const sizes = (opts.sizes ?? (smoke ? `${Math.floor(total / 4)},${Math.floor(total / 2)},all` : '5000,20000,100000,all'))
  .split(',')
  .map((s) => (s === 'all' ? total : Math.min(Number(s), total)))
  .filter((n, i, a) => n > 0 && a.indexOf(n) === i);
const cpu = currentCpu();

// Seeded orders, as bench:recall's (the same seed: the same nested subsets): of the passages (each N is a prefix) and of the queries (split in two halves).
const passageOrder = seededPermutation(total, 23);
const queryOrder = Array.from(seededPermutation(corpus.queries.ids.length, 29));
const half = Math.floor(queryOrder.length / 2);
const estimationQueries = queryOrder.slice(0, half);
const heldOut = queryOrder.slice(half);
const queryVector = (q: number) => Array.from(corpus.queries.vectors.subarray(q * dim, (q + 1) * dim));

console.log(
  `bench:recall-service: ${total} passages, ${corpus.queries.ids.length} queries (${estimationQueries.length} searched for the estimate, ${heldOut.length} held out), ` +
    `model ${corpus.fingerprint}, on ${cpu.model} (${cpu.cpus} logical CPUs)\n${corpus.description}\n`,
);

type Row = ServiceRow;
const rows: Row[] = [];
const misses: string[] = [];

const recallOf = (got: string[], exact: Set<string>) => got.filter((id) => exact.has(id)).length / Math.max(1, exact.size);

for (const bits of bitsList) {
  const work = mkdtempSync(path.join(tmpdir(), 'qembed-recall-service-'));
  const config = loadConfig({ QEMBED_EXACT_MAX_DOCUMENTS: String(total), QEMBED_LOG_LEVEL: 'warn' }, { dataDir: work, modelDir: bundleDir });
  const parts = await compose(config, { database: 'configured', model: { dir: bundleDir } });
  try {
    const { search } = parts;
    if (parts.encoder().fingerprint !== corpus.fingerprint) throw new Error(`the corpus was encoded by model ${corpus.fingerprint}, the service runs ${parts.encoder().fingerprint}`);
    search.createCollection('recall', { codeBits: bits });
    let loaded = 0;
    for (const n of sizes) {
      const started = performance.now();
      for (; loaded < n; loaded += 2048) {
        const batch = Array.from(passageOrder.subarray(loaded, Math.min(n, loaded + 2048)), (p) => ({ id: corpus.passages.ids[p]!, vector: corpus.passages.vectors.slice(p * dim, (p + 1) * dim) }));
        await search.upsertDocuments('recall', batch, { model: corpus.fingerprint });
      }
      loaded = n;
      // The estimation queries are searched once, as a user's first queries: the sample keeps them across sizes.
      if (n === sizes[0]) for (const q of estimationQueries) await search.search({ collection: 'recall', vector: queryVector(q), rescoreMultiplier: 4 });
      const measureStarted = performance.now();
      const info = await search.measureQuality('recall');
      const measureSeconds = (performance.now() - measureStarted) / 1000;

      // Held-out queries: the exact int8 top 10, then every multiplier and auto, per first stage.
      const exact = new Map<number, Set<string>>();
      for (const q of heldOut) {
        const r = await search.search({ collection: 'recall', vector: queryVector(q), topK: RECALL_AT, rescore: 'exact', sampled: false });
        exact.set(q, new Set(r.hits.map((h) => h.id)));
      }
      for (const stage of STAGES) {
        const q = info.quality.firstStages[stage];
        const measuredRecall = async (request: Partial<SearchRequest>) => {
          let sum = 0;
          const times: number[] = [];
          let multiplier = 0;
          for (const id of heldOut) {
            const t = performance.now();
            const r = await search.search({ collection: 'recall', vector: queryVector(id), topK: RECALL_AT, firstStage: stage, sampled: false, ...request });
            times.push(performance.now() - t);
            multiplier = Math.max(multiplier, r.recall.multiplier ?? 0);
            sum += recallOf(
              r.hits.map((h) => h.id),
              exact.get(id)!,
            );
          }
          return { recall: sum / heldOut.length, p50: median(times), multiplier };
        };
        const byMultiplier: Row['byMultiplier'] = [];
        let p50MsAt4 = Number.NaN;
        for (const m of MULTIPLIERS) {
          const measured = await measuredRecall({ rescoreMultiplier: m });
          if (m === 4) p50MsAt4 = measured.p50;
          const e = q.recall.find((r) => r.multiplier === m);
          byMultiplier.push({ multiplier: m, estimate: e?.recall ?? Number.NaN, low: e?.low ?? Number.NaN, high: e?.high ?? Number.NaN, heldOut: measured.recall });
        }
        const auto = await measuredRecall({ rescoreMultiplier: 'auto' });
        const chosen = q.recall.find((r) => r.multiplier === q.autoMultiplier);
        const row: Row = {
          documents: n,
          bits,
          stage,
          basis: info.quality.basis,
          measuredQueries: info.quality.measured,
          byMultiplier,
          auto: { multiplier: auto.multiplier, heldOut: auto.recall, p50Ms: auto.p50, p50MsAt4, estimate: chosen?.recall ?? null, low: chosen?.low ?? null },
        };
        rows.push(row);
        print(row, measureSeconds, (performance.now() - started) / 1000);
        if (n >= AGREEMENT_FROM) {
          for (const b of byMultiplier) {
            if (Math.abs(b.estimate - b.heldOut) > AGREEMENT) misses.push(`N=${n} ${bits} bits ${stage} m=${b.multiplier}: estimate ${fmt(b.estimate)} vs held-out ${fmt(b.heldOut)}`);
          }
        }
        if (auto.recall < DEFAULT_TARGET_RECALL) misses.push(`N=${n} ${bits} bits ${stage}: auto chose ${auto.multiplier}, held-out recall ${fmt(auto.recall)} < ${DEFAULT_TARGET_RECALL}`);
      }
    }
  } finally {
    await parts.close();
    rmSync(work, { recursive: true, force: true });
  }
}

function fmt(x: number): string {
  return Number.isNaN(x) ? '  -   ' : x.toFixed(4);
}

function print(r: Row, measureSeconds: number, seconds: number) {
  console.log(
    `N=${r.documents} ${r.bits} bits ${r.stage}: estimate from ${r.measuredQueries} ${r.basis ?? 'nothing'} (measured in ${measureSeconds.toFixed(1)} s), ${heldOut.length} held-out queries (${seconds.toFixed(0)} s in all)`,
  );
  console.log('    m   estimate [interval]          held-out   difference');
  for (const b of r.byMultiplier) {
    console.log(`  ${String(b.multiplier).padStart(3)}   ${fmt(b.estimate)} [${fmt(b.low)}, ${fmt(b.high)}]   ${fmt(b.heldOut)}   ${(100 * (b.estimate - b.heldOut)).toFixed(2).padStart(6)} pts`);
  }
  const a = r.auto;
  console.log(
    `  auto (target ${DEFAULT_TARGET_RECALL}): multiplier ${a.multiplier} (estimate ${fmt(a.estimate ?? Number.NaN)}, lower bound ${fmt(a.low ?? Number.NaN)}), held-out recall@10 ${fmt(a.heldOut)}, ` +
      `search p50 ${a.p50Ms.toFixed(2)} ms vs ${a.p50MsAt4.toFixed(2)} ms at m=4 (ratio ${(a.p50Ms / a.p50MsAt4).toFixed(2)})\n`,
  );
}

console.log(`targets: estimate within ${AGREEMENT * 100} points of the held-out recall at N >= ${AGREEMENT_FROM}; auto's held-out recall >= ${DEFAULT_TARGET_RECALL}`);
if (smoke) console.log('(smoke: a tiny corpus and bundle; the targets are not checked)');
else console.log(misses.length === 0 ? 'all met' : `missed:\n  ${misses.join('\n  ')}`);

// Checks that everything ran (the smoke test's): every row measured served queries (the smoke
// corpus has fewer than the 50 that replace stand-ins: there, anything measured), estimates are recalls, auto chose a multiplier.
const broken = rows.filter(
  (r) => (smoke ? r.basis === null : r.basis !== 'queries') || r.auto.multiplier < 1 || r.byMultiplier.some((b) => !(b.estimate >= 0 && b.estimate <= 1 && b.heldOut >= 0 && b.heldOut <= 1 && b.low <= b.estimate && b.estimate <= b.high)),
);
console.log(`check every size measured its served queries and every estimate lies in its interval: ${broken.length === 0 && rows.length > 0 ? 'ok' : 'FAILED'}`);
if (broken.length > 0 || rows.length === 0) process.exitCode = 1;

const record: ServiceRecord = {
  measuredAt: new Date().toISOString().slice(0, 10),
  cpu: cpu.model,
  model: corpus.fingerprint,
  corpus: corpus.description,
  passages: total,
  estimationQueries: estimationQueries.length,
  heldOutQueries: heldOut.length,
  agreementFrom: AGREEMENT_FROM,
  agreement: AGREEMENT,
  target: DEFAULT_TARGET_RECALL,
  rows,
  misses,
};
if (opts.json) writeFileSync(opts.json, `${JSON.stringify(record, null, 2)}\n`);
if (broken.length === 0 && rows.length > 0) writePage(record);
