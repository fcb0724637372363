/**
 * What `npm run bench:recall -- --transforms ...` reports about code transforms: the chart of
 * recall against the bytes a document takes in the first stage's memory (one series per
 * transform × first stage, at one N and multiplier) and the "Transforms at scale" section of
 * docs/compact-codes.md (--docs with --transforms; scripts/doc-sections.ts).
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { FIRST_STAGE_TYPES, type FirstStageType } from '../../src/first-stage/query.js';
import type { RecallRow } from './measure.js';
import type { RecallAtScaleRecord } from './report.js';
import type { FitRecord } from './transforms.js';

/** The multiplier the section and the chart are read at: the service's default rescore_multiplier. */
export const TRANSFORM_MULTIPLIER = 4;
/** The name first dims (today's code, no transform) has in the tables and the chart. */
export const FIRST_DIMS = 'first dims';

/** A bench:recall record with transforms: the fits it asked the worker for. */
export type TransformsAtScaleRecord = RecallAtScaleRecord & { fits?: FitRecord[] };

/**
 * Bytes one document takes in the first stage's index (src/first-stage/binary-index.ts): its
 * code, its 4-byte rowid and its tombstone bit, growth slack aside. A transform adds nothing per
 * document: its matrix and mean are held once per collection.
 */
export function indexBytesPerDocument(bits: number): number {
  return bits / 8 + 4 + 1 / 8;
}

const f3 = (x: number) => x.toFixed(3);
const count = (n: number) => n.toLocaleString('en');
const stageName = (s: FirstStageType) => (s === 'hamming' ? 'Hamming' : 'asymmetric');

/** First dims' rows and every transform's, each with its transform's name. */
function named(record: TransformsAtScaleRecord): (RecallRow & { transform: string })[] {
  return [...record.rows.map((r) => ({ ...r, transform: FIRST_DIMS })), ...(record.transform_rows ?? [])];
}

/** The chart: recall against bytes per document at `documents` and `multiplier`; a panel for the first stage's recall@40 and one for recall@10 after rescoring. */
export function transformChartSpec(record: TransformsAtScaleRecord, documents: number, multiplier = TRANSFORM_MULTIPLIER): TopLevelSpec {
  const rows = named(record).filter((r) => r.documents === documents && r.multiplier === multiplier);
  const candidates = 10 * multiplier;
  const panels = [
    { name: `first stage: float32 top-10 among ${candidates} candidates`, value: (r: RecallRow) => r.firstStage.float32 },
    { name: `after int8 rescoring: recall@10 against float32`, value: (r: RecallRow) => r.endToEnd.float32 },
  ];
  const values = rows.flatMap((r) =>
    panels.map((p) => ({ bytes: indexBytesPerDocument(r.bits), bits: r.bits, transform: r.transform, stage: stageName(r.stage), panel: p.name, recall: p.value(r) })),
  );
  const transforms = [...new Set(rows.map((r) => r.transform))];
  const x = { field: 'bytes', type: 'quantitative' as const, scale: { zero: false }, title: 'bytes per document in memory' };
  const y = { field: 'recall', type: 'quantitative' as const, scale: { zero: false }, title: 'recall' };
  const color = { field: 'transform', type: 'nominal' as const, title: 'transform', sort: transforms };
  const dash = { field: 'stage', type: 'nominal' as const, title: 'first stage', sort: FIRST_STAGE_TYPES.map(stageName) };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `Recall against memory per document, N = ${count(documents)}, m = ${multiplier}`,
      subtitle: `one line per transform × first stage; points at ${[...new Set(rows.map((r) => r.bits))].sort((a, b) => a - b).join(', ')} bits; bytes: the code, its 4-byte rowid and a tombstone bit`,
    },
    data: { values },
    facet: { column: { field: 'panel', type: 'nominal', title: null, sort: panels.map((p) => p.name) } },
    spec: {
      width: 300,
      height: 240,
      layer: [
        { mark: { type: 'line', strokeWidth: 1.5 }, encoding: { x, y, color, strokeDash: dash } },
        { mark: { type: 'point', filled: true, size: 30 }, encoding: { x, y, color, shape: dash, tooltip: [{ field: 'bits' }, { field: 'recall', format: '.3f' }] } },
      ],
    },
    resolve: { scale: { y: 'independent' } },
  };
}

export async function transformChartSvg(record: TransformsAtScaleRecord, documents: number, multiplier = TRANSFORM_MULTIPLIER): Promise<string> {
  const view = new vega.View(vega.parse(compile(transformChartSpec(record, documents, multiplier)).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** One table per N: per code length and first stage, recall@40 / recall@10 of first dims and each transform at `multiplier`; the best of a line in bold. */
function tables(record: TransformsAtScaleRecord, multiplier: number): string {
  const rows = named(record).filter((r) => r.multiplier === multiplier);
  const names = [...new Set(rows.map((r) => r.transform))];
  const { sizes, bits, stages } = record.settings;
  return sizes
    .map((n) => {
      const lines = bits.flatMap((b) =>
        stages.map((stage) => {
          const of = names.map((name) => rows.find((r) => r.transform === name && r.documents === n && r.bits === b && r.stage === stage));
          const best = Math.max(...of.map((r) => r?.firstStage.float32 ?? -1));
          const cells = of.map((r) => (r ? `${r.firstStage.float32 === best ? `**${f3(r.firstStage.float32)}**` : f3(r.firstStage.float32)} / ${f3(r.endToEnd.float32)}` : '–'));
          return `| ${b} bits | ${stageName(stage)} | ${indexBytesPerDocument(b)} | ${cells.join(' | ')} |`;
        }),
      );
      return [`N = ${count(n)}:`, '', `| code | first stage | bytes/doc | ${names.join(' | ')} |`, `|${' --- |'.repeat(names.length + 3)}`, ...lines].join('\n');
    })
    .join('\n\n');
}

/** The fits the worker made: per transform and N, how many documents it saw and how long making the codes took. */
function fitLines(record: TransformsAtScaleRecord): string {
  const made = new Map<string, number>();
  for (const r of record.transform_rows ?? []) made.set(`${r.transform}|${r.documents}|${r.bits}`, r.makeSeconds);
  return (record.fits ?? [])
    .map((f) => {
      const seconds = record.settings.bits.map((b) => made.get(`${f.transform}|${f.documents}|${b}`) ?? 0);
      // The first length's make includes the fit itself (made once per N, for every length).
      return `- ${f.transform} at N = ${count(f.documents)}: fitted on ${count(f.sampled)} documents; fit and codes in ${seconds.map((s) => s.toFixed(1)).join(' + ')} s (${record.settings.bits.join(', ')} bits)`;
    })
    .join('\n');
}

/** The "Transforms at scale" section of docs/compact-codes.md, linking the chart at `chartPath` (relative to the page). */
export function transformsAtScaleMarkdown(record: TransformsAtScaleRecord, chartPath?: string, multiplier = TRANSFORM_MULTIPLIER): string {
  const q = record.corpus.queries;
  const cpu = record.cpu;
  const largest = record.settings.sizes.at(-1)!;
  return `## Transforms at scale (bench:recall)

Measured ${record.created_at.slice(0, 10)} on ${cpu.model} (${cpu.arch}, ${cpu.cpus} CPUs) in ${(record.seconds.total / 60).toFixed(1)} minutes, with
\`${record.command}\`: the recall corpus (${count(record.corpus.documents)} passages; docs/quality.md's "Recall at scale" describes it), ${count(q.measured)} queries (${count(q.judged)} judged, ${count(q.pseudo)} pseudo-queries from passages held out of the corpus), model \`${record.corpus.fingerprint}\`.
At each N the documents are the first N of one seeded permutation; \`itq\` and \`qat\` are fitted
by the worker on those N documents' int8 codes (dequantized, as the service fits), at most
100,000 of them spread over the collection as the service samples (QEMBED_FIT_MAX_DOCUMENTS), and
the codes are then recomputed from the int8 codes by the service's code; \`rotation\` is the
seeded random rotation. Each cell: the share of the exact float32 top-10 among the first stage's
${10 * multiplier} candidates (recall@40, the issue's measure; best of the line in bold) / recall@10
against the float32 top-10 after int8 rescoring of those candidates (m = ${multiplier}). bytes/doc is
what the first stage's index holds per document: the code, the 4-byte rowid and a tombstone bit.

${chartPath ? `![recall against bytes per document at N = ${count(largest)}, m = ${multiplier}, per transform and first stage](${chartPath})\n\n` : ''}${tables(record, multiplier)}

${fitLines(record)}
`;
}
