/**
 * Regenerates docs/quality.md (and docs/quality/*.json, docs/quality/retention.svg): the
 * evaluation of a bundle (default: models/default) on ../shared/datasets/msmarco-5k and
 * business-reports. `npm run quality:report [-- --bundle DIR]`.
 *
 * Options: --bundle DIR, --datasets DIR (the folder holding both collections; default
 * ../shared/datasets), --out DIR (where quality.md and quality/ are written; default docs).
 *
 * --smoke: a run of seconds that proves the report is still produced end to end
 * (test/bench/smoke.test.ts runs it): the tiny test bundle on two generated collections of 40
 * passages under those names, written to a temporary folder (or --out), never to docs/.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { compose } from '../src/composition.js';
import { loadConfig } from '../src/config.js';
import { loadBeirDataset } from '../src/datasets/beir.js';
import { loadBundle } from '../src/encoder/bundle.js';
import { createEncoder } from '../src/encoder/encoder.js';
import { runEvaluation } from '../src/eval/evaluate.js';
import { type CompactCodesRecord, compactCodesChartSvg, type EvalReport, firstStageTable, markdownTable, type Mode, resultFor, retentionChartSvg } from '../src/eval/report.js';
import { projectRoot } from '../src/paths.js';
import { QUALITY_PAGE_SECTIONS, sectionOf } from './doc-sections.js';

const { values } = parseArgs({
  options: { bundle: { type: 'string' }, datasets: { type: 'string' }, out: { type: 'string' }, smoke: { type: 'boolean', default: false } },
});
const smoke = values.smoke;
values.bundle ??= smoke ? path.join(projectRoot, 'test', 'fixtures', 'tiny-bundle') : path.join(projectRoot, 'models', 'default');
const scratch = smoke ? mkdtempSync(path.join(tmpdir(), 'qembed-quality-smoke-')) : undefined;
const datasetsDir = values.datasets ?? (scratch ? smokeDatasets(scratch) : path.resolve(projectRoot, '..', 'shared', 'datasets'));
const docsDir = values.out ?? (scratch ? path.join(scratch, 'docs') : path.join(projectRoot, 'docs'));
const outDir = path.join(docsDir, 'quality');
mkdirSync(outDir, { recursive: true });

/** Two small generated BEIR collections under the names the report reads (--smoke only). */
function smokeDatasets(parent: string): string {
  const words = ['rivers', 'stars', 'bread', 'engines', 'music', 'tides', 'maps', 'glass'];
  for (const name of ['msmarco-5k', 'business-reports']) {
    const dir = path.join(parent, 'datasets', name);
    mkdirSync(path.join(dir, 'qrels'), { recursive: true });
    const docs = Array.from({ length: 40 }, (_, i) => JSON.stringify({ _id: `d${i}`, text: `${words[i % 8]} and ${words[(i * 3) % 8]}, passage ${i}` }));
    writeFileSync(path.join(dir, 'corpus.jsonl'), `${docs.join('\n')}\n`);
    const queries = Array.from({ length: 8 }, (_, i) => JSON.stringify({ _id: `q${i}`, text: `${words[i]} ${words[(i * 3) % 8]}` }));
    writeFileSync(path.join(dir, 'queries.jsonl'), `${queries.join('\n')}\n`);
    const qrels = Array.from({ length: 8 }, (_, i) => `q${i}\td${i}\t1`);
    writeFileSync(path.join(dir, 'qrels', 'test.tsv'), `query-id\tcorpus-id\tscore\n${qrels.join('\n')}\n`);
  }
  return path.join(parent, 'datasets');
}

const config = loadConfig({}, { modelDir: values.bundle });
const encoder = await createEncoder(await loadBundle(config.modelDir), config);
const reports: EvalReport[] = [];
try {
  for (const name of ['msmarco-5k', 'business-reports']) {
    process.stderr.write(`evaluating ${name}…\n`);
    const report = await runEvaluation({
      dataset: await loadBeirDataset(path.join(datasetsDir, name)),
      encoder,
      compose: (e) => compose(config, { database: 'memory', model: { encoder: e } }),
    });
    writeFileSync(path.join(outDir, `${name}.json`), `${JSON.stringify({ ...report, dataset: { ...report.dataset, path: `../shared/datasets/${name}` } }, null, 2)}\n`);
    reports.push(report);
  }
} finally {
  await encoder.close();
}
writeFileSync(path.join(outDir, 'retention.svg'), retentionChartSvg(reports));
// Compact first-stage codes: figures recorded by the worker's eval-bundle (docs/compact-codes.md),
// an input of this report (read from the repository's docs whatever --out says).
const compact = JSON.parse(readFileSync(path.join(projectRoot, 'docs', 'quality', 'compact-codes.json'), 'utf8')) as CompactCodesRecord;
writeFileSync(path.join(outDir, 'compact-codes.svg'), compactCodesChartSvg(compact));
const compactRows = Object.entries(compact.methods).flatMap(([method, lengths]) =>
  Object.entries(lengths)
    .sort(([a], [b]) => Number(b) - Number(a))
    .map(([bits, r]) => `| ${method} | ${bits} | ${Number(bits) / 8} | ${(100 * r.binary).toFixed(1)}% | ${(100 * r['binary+int8@4']).toFixed(1)}% |`),
);

const byName = (n: string) => reports.find((r) => r.dataset.name === n)!;
const at = (r: EvalReport, mode: Mode, m: number | null = null) => resultFor(r, mode, m)!;
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const ms = byName('msmarco-5k');
const targets = [
  ['binary+int8 at multiplier 4 keeps ≥ 99% of float32 NDCG@10 on msmarco-5k', at(ms, 'binary+int8', 4).retention, 0.99],
  ['binary alone keeps ≥ 90% of float32 NDCG@10 on msmarco-5k', at(ms, 'binary').retention, 0.9],
] as const;
const model = reports[0]!.model;

const doc = `# Retrieval quality

What quantization costs, measured end to end through the service's own store and search code
(\`qembed eval\`), for the model bundle **${model.name}** (fingerprint \`${model.fingerprint}\`,
${model.dimension} dimensions, ${model.weights} weights). Regenerate this page with:

\`\`\`sh
npm run quality:report          # needs ../shared/datasets and models/default (scripts/serve builds it)
\`\`\`

Generated ${reports[0]!.created_at.slice(0, 10)}. Each collection's full report is in \`docs/quality/<name>.json\`.

## Targets (default model, no QAT)

| target | measured | met |
| --- | --- | --- |
${targets.map(([what, value, bar]) => `| ${what} | ${pct(value)} | ${value >= bar ? 'yes' : `**no** (short by ${pct(bar - value)})`} |`).join('\n')}

![retention against bytes per document and against the rescore multiplier](quality/retention.svg)

${reports
  .map(
    (r) => `## ${r.dataset.name}

${r.dataset.documents} documents, ${r.dataset.queries} queries (${r.dataset.judged_queries} with judgments). Ingest ${r.durations_s.ingest.toFixed(0)} s, queries ${r.durations_s.queries.toFixed(0)} s on this machine.

${markdownTable(r)}

${firstStageTable(r)}
`,
  )
  .join('\n')}
## Compact first-stage codes (a collection's \`code_bits\`)

Retention on ${compact.dataset} when the first stage keeps fewer bits a document in memory
(int8 rescoring still reads all dimensions). Recorded in \`docs/quality/compact-codes.json\`:
${compact.source}. The heads never saw ${compact.dataset}; what each is, and the asymmetric
first stage that helps short codes most: [compact-codes.md](compact-codes.md).

| method | bits | bytes/doc in memory | binary alone | binary + int8 ×4 |
| --- | --- | --- | --- | --- |
${compactRows.join('\n')}

![retention against bytes per document in memory, per method](quality/compact-codes.svg)

## Reading the numbers

- **retention** is NDCG@10 relative to float32 on the same queries: a paired comparison, much
  steadier than NDCG itself. With ${byName('business-reports').dataset.judged_queries} judged queries on business-reports (and a low
  absolute NDCG for this small model there: the float32 baseline agrees exactly with
  sentence-transformers + pytrec_eval), a retention above 100% is noise, not a gain.
- **fidelity@10** is the share of the float32 top-10 that the mode also returns in its top-10,
  averaged over *all* queries, judged or not: label-free and the steadiest signal here.
- **bytes/doc**: float32 1,536; int8 384; binary 48; binary+int8 keeps 48 bytes in memory for
  the first stage and reads 384 bytes from SQLite for the candidates only.
- NDCG@10, Recall@10 and MRR@10 come from a top-10 search (the rescoring sees 10 × multiplier
  candidates, as the service does); Recall@100 from a top-100 search with the same settings.
- **first stage**: the share of the float32 top-10 found in the first stage's top-40 (what
  multiplier 4 rescores), for Hamming distance and for a 4-bit quantized query scored against
  the documents' sign bits (asymmetric, as RaBitQ and Qdrant do; see src/first-stage/asymmetric.ts).

## Report schema (\`qembed eval --out FILE.json\`)

\`\`\`jsonc
{
  "dataset": { "name", "path", "documents", "queries", "judged_queries" },
  "model": { "name", "fingerprint", "dimension", "weights" },
  "created_at": "ISO time",
  "settings": { "top_k": 10, "recall_depth": 100, "multipliers": [1, 2, 4, 8, 16] },
  "results": [                      // one entry per mode (and multiplier)
    {
      "mode": "float32" | "int8" | "binary" | "binary+int8",
      "rescore_multiplier": 4,      // binary+int8 only; null for the other modes
      "ndcg@10": 0.79, "recall@10": 0.22, "recall@100": 0.80, "mrr@10": 1.0,   // trec_eval definitions
      "retention": 0.998,           // ndcg@10 / float32's ndcg@10
      "fidelity@10": 0.95,          // mean |top10 ∩ float32 top10| / 10, over all queries
      "bytes_per_doc": 432
    }
  ],
  "first_stage": [ { "method": "hamming" | "asymmetric-4bit", "recall_float32_top10@40": 0.97 } ],
  "durations_s": { "ingest", "queries" }
}
\`\`\`

Metrics follow trec_eval (as pytrec_eval computes them; a test checks ours against pytrec_eval
on the same run): graded gains for NDCG, relevance ≥ 1 for recall and MRR, queries without
judgments skipped, judged documents missing from the corpus counted as unretrievable.
`;
// The sections other commands write (bench:recall, bench:recall-service: scripts/doc-sections.ts) are kept as they are.
const page = path.join(docsDir, 'quality.md');
const old = existsSync(page) ? readFileSync(page, 'utf8') : '';
const kept = QUALITY_PAGE_SECTIONS.flatMap((name) => sectionOf(old, name) ?? []);
writeFileSync(page, [doc.trimEnd(), ...kept].join('\n\n') + '\n');
process.stderr.write(`wrote ${path.relative(process.cwd(), path.join(docsDir, 'quality.md')) || 'quality.md'}\n`);
if (scratch && !values.out) rmSync(scratch, { recursive: true, force: true });
