/** `qembed eval` (also `npm run eval --`): retrieval quality of a bundle on a BEIR collection, per precision. */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { compose } from '../composition.js';
import { processConfig } from '../config.js';
import { modelDirForTools } from '../models/encoder-choice.js';
import { loadBeirDataset } from '../datasets/beir.js';
import { loadBundle } from '../encoder/bundle.js';
import { createEncoder } from '../encoder/encoder.js';
import { runEvaluation } from '../eval/evaluate.js';
import { firstStageTable, markdownTable, resultFor, retentionChartSvg, summarize } from '../eval/report.js';
import { recordEvaluation } from '../models/evaluation-record.js';

export const EVAL_HELP = `usage: qembed eval --dataset DIR [options]

Ingests a BEIR collection (corpus.jsonl, queries.jsonl, qrels/test.tsv) into a temporary
collection through the service's own store and search code, runs every query in each mode and
reports NDCG@10, Recall@10, Recall@100, MRR@10, retention (NDCG@10 relative to float32),
fidelity@10 (share of the float32 top-10 found, over all queries) and bytes per document:

  float32       exact search over float32 document vectors (kept for the evaluation only)
  int8          the float32 query against every int8 document code
  binary        Hamming distance over the binary codes only
  binary+int8   binary first stage, int8 rescoring, at each rescore multiplier

The report's schema is in docs/quality.md.

options:
  --dataset DIR         the BEIR collection (required)
  --bundle DIR          model bundle (default: QEMBED_MODEL_DIR; with auto, the encoder the server
                        chose, recorded in QEMBED_MODELS_DIR/encoder-choice.json)
  --out FILE.json       write the JSON report here
  --markdown FILE.md    write the Markdown tables here
  --chart FILE.svg      write the retention chart here
  --multipliers LIST    rescore multipliers for binary+int8 (default 1,2,4,8,16)
  --code-bits N         first-stage code length in bits: one of the bundle's binary_code_bits
                        (GET /models); binary modes scan the first N dimensions' signs, int8
                        rescoring keeps every dimension (default: the dimension)
  --record              keep the headline figures in the bundle's evaluation.json (one entry per
                        dataset), which GET /models lists
  --min-retention X     exit 1 when binary+int8 at multiplier 4 keeps less than X of float32's
                        NDCG@10 (a floor that catches a broken pipeline, e.g. 0.9)`;

export async function evalCommand(argv: string[], usageError: (m: string) => Error): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      dataset: { type: 'string' },
      bundle: { type: 'string' },
      out: { type: 'string' },
      markdown: { type: 'string' },
      chart: { type: 'string' },
      multipliers: { type: 'string' },
      'code-bits': { type: 'string' },
      'min-retention': { type: 'string' },
      record: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${EVAL_HELP}\n`);
    return 0;
  }
  if (!values.dataset) throw usageError('--dataset DIR is required');
  const multipliers = (values.multipliers ?? '1,2,4,8,16').split(',').map((s) => Number(s.trim()));
  if (multipliers.some((m) => !Number.isInteger(m) || m < 1 || m > 20)) throw usageError('--multipliers must be integers from 1 to 20, e.g. 1,2,4');
  const codeBits = values['code-bits'] === undefined ? undefined : Number(values['code-bits']);
  if (codeBits !== undefined && !(Number.isInteger(codeBits) && codeBits > 0 && codeBits % 8 === 0)) throw usageError('--code-bits must be a positive multiple of 8, e.g. 128');
  const floor = values['min-retention'] === undefined ? undefined : Number(values['min-retention']);
  if (floor !== undefined && !(floor >= 0 && floor <= 10)) throw usageError('--min-retention must be a number from 0 to 10 (retention is a ratio, 1 = as good as float32)');

  const config = processConfig(values.bundle ? { modelDir: values.bundle } : {});
  const dataset = await loadBeirDataset(values.dataset);
  const encoder = await createEncoder(await loadBundle(modelDirForTools(config)), config);
  let report;
  try {
    let last = 0;
    report = await runEvaluation({
      dataset,
      encoder,
      // The configured PostgreSQL when there is one (the pipeline evaluated is the one it serves), else SQLite in memory.
      compose: (e) => compose(config, { database: 'scratch', model: { encoder: e } }),
      multipliers,
      codeBits,
      onProgress: (stage, done, total) => {
        const now = performance.now();
        if (done < total && now - last < 2000) return;
        last = now;
        process.stderr.write(`eval ${dataset.name}: ${stage} ${done}/${total}\n`);
      },
    });
  } finally {
    await encoder.close();
  }
  const write = (file: string, content: string) => {
    mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    writeFileSync(file, content);
  };
  if (values.out) write(values.out, `${JSON.stringify(report, null, 2)}\n`);
  const tables = `${markdownTable(report)}\n\n${firstStageTable(report)}\n`;
  if (values.markdown) write(values.markdown, tables);
  if (values.chart) write(values.chart, retentionChartSvg([report]));
  if (values.record) process.stderr.write(`eval: figures recorded in ${recordEvaluation(modelDirForTools(config), report.model.fingerprint, report.dataset.name, summarize(report))}\n`);
  process.stdout.write(`\n${report.dataset.name} (${report.dataset.documents} documents, ${report.dataset.judged_queries} judged queries), model ${report.model.name} ${report.model.fingerprint}\n\n${tables}`);

  if (floor !== undefined) {
    const at4 = resultFor(report, 'binary+int8', 4);
    if (!at4) throw usageError('--min-retention needs multiplier 4 in --multipliers');
    if (at4.retention < floor) {
      process.stderr.write(`eval: binary+int8 at multiplier 4 keeps ${(100 * at4.retention).toFixed(1)}% of float32 NDCG@10, below the floor ${(100 * floor).toFixed(1)}%\n`);
      return 1;
    }
  }
  return 0;
}
