/**
 * npm run bench:recall — label-free recall of the served search as a collection grows, on the
 * real-text corpus of bench/recall/corpus.ts: at N documents (default 5,000, 20,000, 100,000 and
 * all; nested subsets of one seeded permutation), for first-stage code lengths 384, 256, 128 and
 * 64 bits, both first stages (Hamming, asymmetric) and multipliers 1, 2, 4 … 64 and 100 (the most
 * a search may ask for: Hamming needs more than 16 to reach 0.99): the share of the exact top-10
 * (float32, and int8) among the first stage's top_k × m candidates, and the recall@10 after int8
 * rescoring (bench/recall/measure.ts). Prints the table, the smallest multiplier holding 0.99 at
 * each N, and runs checks that hold by construction (exit 1 when one fails).
 *
 * Options: --sizes 5000,20000,100000,all  --bits 384,256,128,64  --multipliers 1,2,4,8,16,32,64,100
 * --queries K (a seeded sample of the corpus' queries; default all)  --seed S (the documents'
 * permutation and the query sample)  --bundle DIR (passed to the corpus; default the served
 * bundle)  --json FILE (everything)  --chart FILE.svg  --page FILE.md (writes its "Recall at
 * scale" section: scripts/doc-sections.ts)  --docs (all three for docs/: the record and chart as
 * docs/quality/recall-at-scale.json and .svg, the section of docs/quality.md, which
 * `npm run quality:report` keeps). The page is not written when a check fails.
 *
 * --smoke: seconds (test/bench/smoke.test.ts runs it): the corpus' smoke build (the tiny test
 * bundle, a few dozen passages), N = a quarter, a half and all of them, codes of the bundle's
 * whole dimension and of half of it. Its figures mean nothing; its checks do.
 *
 * --transforms rotation,itq,qat: code transforms measured beside first dims (bench/recall/transforms.ts;
 * itq and qat are fitted by the worker on each N's documents, at most --fit-max-documents of them
 * as the service samples: --python $(scripts/worker-env)), printed side by side and kept in the
 * --json record with the worker's fits; --transform-chart FILE.svg (recall against bytes per
 * document at the largest N, m = 4) and --transform-page FILE.md (its "Transforms at scale"
 * section: bench/recall/transform-report.ts). With --transforms, --docs writes those instead of
 * the quality page's: docs/compact-codes/transforms-at-scale.json and .svg and the section of
 * docs/compact-codes.md (a plain run keeps docs/quality.md's figures).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { currentCpu } from '../src/encoder/cpu.js';
import { FIRST_STAGE_TYPES } from '../src/first-stage/query.js';
import { projectRoot } from '../src/paths.js';
import { RECALL_AT } from '../src/quality/estimate.js';
import { RECALL_AT_SCALE, TRANSFORMS_AT_SCALE, withSection } from '../scripts/doc-sections.js';
import { loadRecallCorpus } from './recall/corpus.js';
import { measureRecall, REFERENCES, type RecallRow, seededPermutation, takeRows } from './recall/measure.js';
import { recallAtScaleMarkdown, recallChartSvg, recallTable, smallestMultipliers, summaryTable, transformTable } from './recall/report.js';
import { type TransformsAtScaleRecord, transformChartSvg, transformsAtScaleMarkdown } from './recall/transform-report.js';
import { type FitRecord, transformSources } from './recall/transforms.js';

const { values: opts } = parseArgs({
  options: {
    sizes: { type: 'string' },
    bits: { type: 'string' },
    multipliers: { type: 'string', default: '1,2,4,8,16,32,64,100' },
    queries: { type: 'string' },
    seed: { type: 'string', default: '23' },
    bundle: { type: 'string' },
    json: { type: 'string' },
    chart: { type: 'string' },
    page: { type: 'string' },
    docs: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    transforms: { type: 'string' },
    python: { type: 'string' },
    'fit-max-documents': { type: 'string' },
    'transform-chart': { type: 'string' },
    'transform-page': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (opts.help) {
  console.log(
    'npm run bench:recall -- [--sizes 5000,20000,100000,all] [--bits 384,256,128,64] [--multipliers 1,2,4,8,16,32,64,100] [--queries K] [--seed S] [--bundle DIR] [--json FILE] [--chart FILE.svg] [--page FILE.md] [--docs] [--transforms rotation,itq,qat [--python PY] [--fit-max-documents N] [--transform-chart FILE.svg] [--transform-page FILE.md]] [--smoke]',
  );
  process.exit(0);
}
const smoke = opts.smoke;
if (opts.docs) {
  if (smoke) throw new Error('--docs writes figures into docs/: not from a --smoke run (give --page, --json, --chart elsewhere)');
  if (opts.transforms) {
    opts.json ??= path.join(projectRoot, 'docs', 'compact-codes', 'transforms-at-scale.json');
    opts['transform-chart'] ??= path.join(projectRoot, 'docs', 'compact-codes', 'transforms-at-scale.svg');
    opts['transform-page'] ??= path.join(projectRoot, 'docs', 'compact-codes.md');
  } else {
    opts.json ??= path.join(projectRoot, 'docs', 'quality', 'recall-at-scale.json');
    opts.chart ??= path.join(projectRoot, 'docs', 'quality', 'recall-at-scale.svg');
    opts.page ??= path.join(projectRoot, 'docs', 'quality.md');
  }
}
const seed = Number(opts.seed);
const list = (text: string, all: number) => text.split(',').map((s) => (s.trim() === 'all' ? all : Number(s)));
const started = performance.now();
const log = (line: string) => process.stderr.write(`${line}\n`);

const corpus = await loadRecallCorpus({ bundleDir: opts.bundle, smoke, log });
const dim = corpus.dimension;
const n = corpus.passages.ids.length;
const corpusSeconds = (performance.now() - started) / 1000;

// The smoke corpus has a few dozen passages: a quarter, a half and all of them still nest.
const defaultSizes = smoke ? `${Math.max(1, Math.floor(n / 4))},${Math.max(1, Math.floor(n / 2))},all` : '5000,20000,100000,all';
const sizes = [...new Set(list(opts.sizes ?? defaultSizes, n).map((s) => Math.min(s, n)))].sort((a, b) => a - b);
const bits = list(opts.bits ?? (smoke ? `${dim},${dim / 2}` : '384,256,128,64'), dim);
const multipliers = list(opts.multipliers, 0);
for (const x of [...sizes, ...bits, ...multipliers]) if (!Number.isInteger(x) || x < 1) throw new Error(`sizes, bits and multipliers are positive integers (or "all" for a size); got ${x}`);

// The queries: all, or a seeded sample in corpus order.
const total = corpus.queries.ids.length;
const take = opts.queries === undefined ? total : Math.min(total, Number(opts.queries));
const chosen = take === total ? Uint32Array.from({ length: total }, (_, i) => i) : seededPermutation(total, seed + 1).subarray(0, take).sort();
const kinds = Array.from(chosen, (i) => corpus.queries.kinds[i]!);

const cpu = currentCpu();
console.log(
  `bench:recall on ${cpu.model} (${cpu.arch}, ${cpu.cpus} CPUs): ${n.toLocaleString('en')} documents, ${take} queries ` +
    `(${kinds.filter((k) => k === 'judged').length} judged, ${kinds.filter((k) => k === 'pseudo').length} pseudo), model ${corpus.fingerprint} (${dim} dimensions)`,
);
console.log(`N = ${sizes.join(', ')}; bits ${bits.join(', ')}; first stages ${FIRST_STAGE_TYPES.join(', ')}; m = ${multipliers.join(', ')}; corpus loaded in ${corpusSeconds.toFixed(1)} s`);

const fits: FitRecord[] = [];
const fitMaxDocuments = opts['fit-max-documents'] === undefined ? undefined : Number(opts['fit-max-documents']);
const measurement = measureRecall(
  {
    documents: takeRows(corpus.passages.vectors, dim, seededPermutation(n, seed)),
    queries: takeRows(corpus.queries.vectors, dim, chosen),
    quantizer: corpus.quantizer,
  },
  {
    sizes,
    bits,
    stages: FIRST_STAGE_TYPES,
    multipliers,
    transforms: opts.transforms ? transformSources(opts.transforms.split(','), { python: opts.python, quantizer: corpus.quantizer, bits, seed, fitMaxDocuments, log }, fits) : [],
  },
  log,
);
const { rows } = measurement;
const smallest = smallestMultipliers(rows);
console.log(`\n${recallTable(rows)}\n\n${summaryTable(smallest)}\n`);
if (measurement.transformRows.length > 0) console.log(`${transformTable(rows, measurement.transformRows)}\n`);
console.log(`mean cosine of the exact float32 1st / 10th neighbour: ${measurement.neighbours.map((x) => `N = ${x.documents}: ${x.first.toFixed(3)} / ${x.tenth.toFixed(3)}`).join(', ')}`);
const s = measurement.seconds;
console.log(
  `seconds: corpus ${corpusSeconds.toFixed(1)}, codes ${s.codes.toFixed(1)}, exact float32 ${s.exact.float32.toFixed(1)}, exact int8 ${s.exact.int8.toFixed(1)}, first stage + rescoring ${s.firstStage.toFixed(1)}`,
);

/** Checks that hold by construction; a failure is a bug in the bench or in the code it measures. */
function checks(rows: readonly (RecallRow & { transform?: string })[]): { name: string; ok: boolean }[] {
  const byGroup = new Map<string, RecallRow[]>();
  for (const r of rows) {
    const key = `${r.transform ?? 'first dims'}|${r.documents}|${r.bits}|${r.stage}`;
    byGroup.set(key, [...(byGroup.get(key) ?? []), r]);
  }
  const groups = [...byGroup.values()].map((g) => g.sort((a, b) => a.multiplier - b.multiplier));
  const values = rows.flatMap((r) => REFERENCES.flatMap((ref) => [r.firstStage[ref], r.endToEnd[ref]]));
  // Every document is a candidate once top_k × m reaches N: the first stage keeps the whole exact top-10.
  const allCandidates = rows.filter((r) => RECALL_AT * r.multiplier >= r.documents);
  return [
    { name: 'every recall is within [0, 1]', ok: values.every((v) => v >= 0 && v <= 1) },
    { name: 'first-stage recall never falls as m grows', ok: groups.every((g) => g.every((r, i) => i === 0 || REFERENCES.every((ref) => r.firstStage[ref] >= g[i - 1]!.firstStage[ref]))) },
    {
      // Rescoring by the reference's own score puts every kept exact document back on top; only a
      // tie in the int8 score at the 10th place can differ (rescoring breaks it by first-stage distance).
      name: 'recall@10 against int8 equals the first stage share of the int8 top-10 (ties in the int8 score aside: within 0.001)',
      ok: rows.every((r) => Math.abs(r.endToEnd.int8 - r.firstStage.int8) <= 0.001),
    },
    {
      name: `with every document a candidate (top_k × m >= N: ${allCandidates.length} rows), the first stage keeps both top-10s and recall@10 against int8 is 1`,
      ok: allCandidates.every((r) => r.firstStage.float32 === 1 && r.firstStage.int8 === 1 && r.endToEnd.int8 === 1),
    },
  ];
}
const results = checks([...rows, ...measurement.transformRows]);
for (const c of results) console.log(`check: ${c.name}: ${c.ok ? 'ok' : 'FAILED'}`);

const record: TransformsAtScaleRecord = {
  created_at: new Date().toISOString(),
  // The worker's Python as the README names it, not this machine's path to it.
  command: `npm run bench:recall -- ${process.argv
    .slice(2)
    .map((a, i, all) => (all[i - 1] === '--python' ? '$(scripts/worker-env)' : a))
    .join(' ')}`.trim(),
  cpu,
  corpus: {
    fingerprint: corpus.fingerprint,
    dimension: dim,
    description: corpus.description,
    documents: n,
    queries: { measured: take, judged: kinds.filter((k) => k === 'judged').length, pseudo: kinds.filter((k) => k === 'pseudo').length, corpus_total: total },
  },
  settings: { sizes, bits, stages: [...FIRST_STAGE_TYPES], multipliers, top_k: RECALL_AT, seed },
  rows,
  ...(measurement.transformRows.length > 0 && { transform_rows: measurement.transformRows }),
  ...(fits.length > 0 && { fits }),
  neighbours: measurement.neighbours,
  smallest_multiplier: smallest,
  seconds: { ...s, corpus: corpusSeconds, total: (performance.now() - started) / 1000 },
};
if (opts.json) {
  mkdirSync(path.dirname(opts.json), { recursive: true });
  writeFileSync(opts.json, `${JSON.stringify(record, null, 2)}\n`);
  console.log(`wrote ${opts.json}`);
}
if (opts.chart) {
  writeFileSync(opts.chart, await recallChartSvg(rows));
  console.log(`wrote ${opts.chart}`);
}
if (results.some((c) => !c.ok)) process.exit(1);
if (opts.page) {
  const page = opts.page;
  const doc = existsSync(page) ? readFileSync(page, 'utf8') : '';
  const chart = opts.chart ? path.relative(path.dirname(path.resolve(page)), path.resolve(opts.chart)) : undefined;
  writeFileSync(page, withSection(doc, RECALL_AT_SCALE, recallAtScaleMarkdown(record, chart)));
  console.log(`wrote the ${RECALL_AT_SCALE} section of ${page}`);
}
const transformChart = opts['transform-chart'];
if (transformChart && record.transform_rows) {
  mkdirSync(path.dirname(transformChart), { recursive: true });
  writeFileSync(transformChart, await transformChartSvg(record, sizes.at(-1)!));
  console.log(`wrote ${transformChart}`);
}
const transformPage = opts['transform-page'];
if (transformPage && record.transform_rows) {
  const doc = existsSync(transformPage) ? readFileSync(transformPage, 'utf8') : '';
  const chart = transformChart ? path.relative(path.dirname(path.resolve(transformPage)), path.resolve(transformChart)) : undefined;
  writeFileSync(transformPage, withSection(doc, TRANSFORMS_AT_SCALE, transformsAtScaleMarkdown(record, chart)));
  console.log(`wrote the ${TRANSFORMS_AT_SCALE} section of ${transformPage}`);
}
