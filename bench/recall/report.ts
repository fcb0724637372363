/**
 * What `npm run bench:recall` reports: its JSON record (--json), the table it prints, the
 * smallest multiplier holding a recall target, the chart (vega-lite, rendered to SVG headless)
 * and its section of docs/quality.md (--docs; scripts/doc-sections.ts: quality:report keeps it).
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { CpuInfo } from '../../src/encoder/cpu.js';
import { FIRST_STAGE_TYPES, type FirstStageType } from '../../src/first-stage/query.js';
import { DEFAULT_TARGET_RECALL, RECALL_AT } from '../../src/quality/estimate.js';
import type { Neighbours, RecallMeasurement, RecallRow, Reference } from './measure.js';

/** The recall a multiplier must hold to count in the summary: a collection's default target. */
export const TARGET_RECALL = DEFAULT_TARGET_RECALL;

export interface RecallAtScaleRecord {
  created_at: string;
  /** The command line that produced the record. */
  command: string;
  cpu: CpuInfo;
  corpus: {
    fingerprint: string;
    dimension: number;
    description: string;
    documents: number;
    /** Queries measured, by kind, and the corpus' total (more when --queries subsampled). */
    queries: { measured: number; judged: number; pseudo: number; corpus_total: number };
  };
  settings: { sizes: number[]; bits: number[]; stages: FirstStageType[]; multipliers: number[]; top_k: number; seed: number };
  rows: RecallRow[];
  /** Per size: the exact float32 neighbours' mean scores (1st and 10th). */
  neighbours: Neighbours[];
  /** Per size, code length and first stage: the smallest multiplier measured whose end-to-end recall@10 reaches TARGET_RECALL (null: none). */
  smallest_multiplier: SmallestMultiplier[];
  /** Code transforms measured beside first dims (--transforms), when asked for. */
  transform_rows?: (RecallRow & { transform: string; makeSeconds: number })[];
  seconds: RecallMeasurement['seconds'] & { corpus: number; total: number };
}

export interface SmallestMultiplier {
  documents: number;
  bits: number;
  stage: FirstStageType;
  /** Against the int8 exact top-10 (the service's own estimate's reference) and the float32 one. */
  multiplier: Record<Reference, number | null>;
}

const f3 = (x: number) => x.toFixed(3);
const count = (n: number) => n.toLocaleString('en');
const stageName = (s: FirstStageType) => (s === 'hamming' ? 'Hamming' : 'asymmetric');

/** The smallest multiplier holding `target` end-to-end recall@10, per size × bits × stage. */
export function smallestMultipliers(rows: readonly RecallRow[], target = TARGET_RECALL): SmallestMultiplier[] {
  const groups = new Map<string, RecallRow[]>();
  for (const r of rows) {
    const key = `${r.documents}|${r.bits}|${r.stage}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()].map((group) => {
    const sorted = [...group].sort((a, b) => a.multiplier - b.multiplier);
    const smallest = (reference: Reference) => sorted.find((r) => r.endToEnd[reference] >= target)?.multiplier ?? null;
    const { documents, bits, stage } = sorted[0]!;
    return { documents, bits, stage, multiplier: { int8: smallest('int8'), float32: smallest('float32') } };
  });
}

/**
 * Transforms beside first dims, as printed: per size, code length and first stage, the first
 * stage's share of the exact float32 top-10 among 10·m candidates (m = 4: recall@40, issue 24's
 * measure) and recall@10 against float32 after int8 rescoring at m = 4 (what a search returns),
 * for first dims and each transform.
 */
export function transformTable(firstDims: readonly RecallRow[], rows: readonly (RecallRow & { transform: string })[]): string {
  const names = [...new Set(rows.map((r) => r.transform))];
  const key = (r: RecallRow) => `${r.documents}|${r.bits}|${r.stage}`;
  const at = (list: readonly RecallRow[], k: string) => list.find((r) => key(r) === k && r.multiplier === 4);
  const keys = [...new Set(rows.filter((r) => r.multiplier === 4).map(key))];
  const cell = (r: RecallRow | undefined) => (r ? `${f3(r.firstStage.float32)} / ${f3(r.endToEnd.float32)}` : '–');
  const header = ['N', 'bits', 'first stage', 'first dims', ...names];
  const lines = keys.map((k) => {
    const [documents, bits, stage] = k.split('|');
    return [count(Number(documents)), bits!, stage!, cell(at(firstDims, k)), ...names.map((n) => cell(at(rows.filter((r) => r.transform === n), k)))];
  });
  return [
    'first-stage recall@40 of the float32 top-10 / recall@10 against float32 after int8 rescoring, at m = 4:',
    header.join(' | '),
    ...lines.map((l) => l.join(' | ')),
  ].join('\n');
}

/** The full table, one line per size × bits × stage × multiplier, as printed. */
export function recallTable(rows: readonly RecallRow[]): string {
  const header = ['documents', 'bits', 'first stage', 'm', 'candidates', 'first stage vs f32', 'vs int8', 'recall@10 vs f32', 'vs int8'];
  const lines = rows.map((r) => [count(r.documents), String(r.bits), r.stage, String(r.multiplier), String(RECALL_AT * r.multiplier), f3(r.firstStage.float32), f3(r.firstStage.int8), f3(r.endToEnd.float32), f3(r.endToEnd.int8)]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const format = (cells: string[]) => cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [format(header), ...lines.map(format)].join('\n');
}

/** The summary, as printed: per bits × stage, the smallest multiplier holding the target at each size. */
export function summaryTable(smallest: readonly SmallestMultiplier[], target = TARGET_RECALL): string {
  const sizes = [...new Set(smallest.map((s) => s.documents))].sort((a, b) => a - b);
  const cell = (m: number | null) => (m === null ? 'none' : String(m));
  const lines = groupsOf(smallest).map(({ bits, stage, bySize }) => {
    const cells = sizes.map((n) => {
      const s = bySize.get(n);
      return s ? `${cell(s.multiplier.int8)} (f32 ${cell(s.multiplier.float32)})` : '';
    });
    return `${String(bits).padStart(4)} bits  ${stage.padEnd(10)}  ${cells.map((c) => c.padEnd(16)).join('  ')}`;
  });
  return [
    `smallest m holding end-to-end recall@10 >= ${target} against the int8 exact top-10 (against float32 in brackets; none: no measured m does)`,
    `bits       stage       ${sizes.map((n) => `N = ${count(n)}`.padEnd(16)).join('  ')}`,
    ...lines,
  ].join('\n');
}

/** Groups by (bits descending, stage) with each group's entries by size. */
function groupsOf(smallest: readonly SmallestMultiplier[]) {
  const keys = [...new Set(smallest.map((s) => `${s.bits}|${s.stage}`))];
  return keys
    .map((key) => {
      const [bits, stage] = key.split('|') as [string, FirstStageType];
      const bySize = new Map(smallest.filter((s) => s.bits === Number(bits) && s.stage === stage).map((s) => [s.documents, s]));
      return { bits: Number(bits), stage, bySize };
    })
    .sort((a, b) => b.bits - a.bits || FIRST_STAGE_TYPES.indexOf(a.stage) - FIRST_STAGE_TYPES.indexOf(b.stage));
}

/** The chart: end-to-end recall@10 against N (log scale), one line per multiplier; a panel per code length (columns) and first stage (rows). */
export function recallChartSpec(rows: readonly RecallRow[], target = TARGET_RECALL): TopLevelSpec {
  const values = rows.flatMap((r) =>
    (['int8', 'float32'] as const).map((reference) => ({
      documents: r.documents,
      stage: stageName(r.stage),
      bits: `${r.bits} bits`,
      m: r.multiplier,
      reference: `${reference} top-10`,
      recall: r.endToEnd[reference],
    })),
  );
  const sizes = rows.map((r) => r.documents);
  const x = { field: 'documents', type: 'quantitative' as const, scale: { type: 'log' as const, domain: [Math.min(...sizes), Math.max(...sizes)], nice: false }, title: 'documents N (log scale)', axis: { format: '~s' } };
  // Each panel zooms on its own figures (and the target's rule): 384 bits sit near 1, 64 bits far below.
  const y = { field: 'recall', type: 'quantitative' as const, scale: { zero: false }, title: 'recall@10' };
  const color = { field: 'm', type: 'ordinal' as const, title: 'multiplier m', scale: { scheme: 'viridis' } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'End-to-end recall@10 after int8 rescoring of top_k × m candidates, against N', subtitle: `solid: against the exact int8 top-10; dashed: against the exact float32 top-10; grey rule: ${target}` },
    data: { values },
    facet: {
      column: { field: 'bits', type: 'nominal', title: null, sort: [...new Set(rows.map((r) => r.bits))].sort((a, b) => b - a).map((b) => `${b} bits`) },
      row: { field: 'stage', type: 'nominal', title: null, sort: FIRST_STAGE_TYPES.map(stageName) },
    },
    spec: {
      width: 190,
      height: 170,
      layer: [
        { mark: { type: 'line', strokeWidth: 1.5 }, encoding: { x, y, color, strokeDash: { field: 'reference', type: 'nominal', title: 'against', sort: ['int8 top-10', 'float32 top-10'] } } },
        { mark: { type: 'point', filled: true, size: 18 }, encoding: { x, y, color } },
        { mark: { type: 'rule', color: '#999', strokeWidth: 1 }, encoding: { y: { datum: target } } },
      ],
    },
    resolve: { scale: { y: 'independent' } },
  };
}

export async function recallChartSvg(rows: readonly RecallRow[], target = TARGET_RECALL): Promise<string> {
  const view = new vega.View(vega.parse(compile(recallChartSpec(rows, target)).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** How to run the bench and read its figures: the section's fixed part. */
const HOW = `Label-free recall of the served search (binary first stage, then int8 rescoring) as a
collection grows, on a corpus of real text: \`bench/recall/corpus.ts\` builds it (its passages,
its queries and how they are made are in the corpus' description, quoted below). This section
is written by:

\`\`\`sh
npm run bench:recall-corpus     # builds and caches the corpus once (encodes it with the served bundle)
npm run bench:recall -- --docs  # measures; writes docs/quality/recall-at-scale.json and .svg, and this section
\`\`\`

The documents of size N are the first N of one seeded permutation of the corpus (nested
subsets); every query is measured at every N. For each query there are two exact top-10s over
the N documents: **float32** (the float32 query · the float32 documents) and **int8** (the
folded int8 score rescoring ranks by, \`scoreInt8\`: the reference of the service's own recall
estimate, so these figures and \`GET /collections/{name}\`'s are comparable). Both first stages
run through the service's index and kernel, over the first \`bits\` sign bits of each document
(a collection's \`code_bits\`): **Hamming** distance, and **asymmetric** (a 4-bit query against
the sign bits). Columns:

- **first stage**: the share of the exact top-10 among the first stage's top_k × m = 10·m
  candidates (ties in the first stage's order by row, as the service breaks them);
- **recall@10**: |exact top-10 ∩ the top-10 after int8 rescoring of those candidates| / 10, the
  answer a search with \`rescore_multiplier\` m gives.

Against the int8 reference, recall@10 equals the first stage's share (rescoring with the
reference's own score puts every kept exact document back on top; ties in that score aside), so
it is listed once; against float32, rescoring with int8 codes can lose documents the first stage
kept.`;

/** The "Recall at scale" section of docs/quality.md, linking the chart at `chartPath` (relative to the page); without a record, what it will hold. */
export function recallAtScaleMarkdown(record: RecallAtScaleRecord | undefined, chartPath?: string): string {
  if (!record) {
    return `## Recall at scale

${HOW}

Not measured yet: the figures, the chart and how recall falls with N come with the first run of
the commands above.
`;
  }
  const sizes = record.settings.sizes;
  const rows = record.rows;
  const at = (n: number, bits: number, stage: FirstStageType, m: number) => rows.find((r) => r.documents === n && r.bits === bits && r.stage === stage && r.multiplier === m);
  const groups = [...new Set(rows.map((r) => `${r.bits}|${r.stage}`))]
    .map((k) => ({ bits: Number(k.split('|')[0]), stage: k.split('|')[1] as FirstStageType }))
    .sort((a, b) => b.bits - a.bits || FIRST_STAGE_TYPES.indexOf(a.stage) - FIRST_STAGE_TYPES.indexOf(b.stage));
  const head = (first: string) => [`| ${first} | ${sizes.map((n) => `N = ${count(n)}`).join(' | ')} |`, `|${' --- |'.repeat(sizes.length + 3)}`];
  const recallRows = groups.flatMap(({ bits, stage }) =>
    record.settings.multipliers.map((m) => {
      const cells = sizes.map((n) => {
        const r = at(n, bits, stage, m);
        return r ? `${f3(r.endToEnd.int8)} / ${f3(r.endToEnd.float32)} / ${f3(r.firstStage.float32)}` : '';
      });
      return `| ${stageName(stage)} | ${bits} | ${m} | ${cells.join(' | ')} |`;
    }),
  );
  const smallest = groupsOf(record.smallest_multiplier).map(({ bits, stage, bySize }) => {
    const cell = (n: number) => {
      const s = bySize.get(n);
      const m = (x: number | null | undefined) => (x === null || x === undefined ? 'none' : String(x));
      return `${m(s?.multiplier.int8)} / ${m(s?.multiplier.float32)}`;
    };
    return `| ${stageName(stage)} | ${bits} | ${sizes.map(cell).join(' | ')} |`;
  });
  const q = record.corpus.queries;
  const cpu = record.cpu;
  // The smallest multiplier, 4 (the default) and the largest: how recall@10 moves from the smallest N to the largest.
  const ms = record.settings.multipliers;
  const shown = [ms[0]!, ms.find((m) => m >= 4) ?? ms.at(-1)!, ms.at(-1)!].filter((m, i, all) => all.indexOf(m) === i);
  const trend = (a: number, b: number) => (b > a + 0.005 ? 'rises' : b < a - 0.005 ? 'falls' : 'holds');
  const drops = groups.map(({ bits, stage }) => {
    const parts = shown.map((m) => {
      const first = at(sizes[0]!, bits, stage, m)!.endToEnd;
      const last = at(sizes.at(-1)!, bits, stage, m)!.endToEnd;
      return `at m = ${m} it ${trend(first.int8, last.int8)}: ${f3(first.int8)} to ${f3(last.int8)} (against float32: ${f3(first.float32)} to ${f3(last.float32)})`;
    });
    return `- ${stageName(stage)}, ${bits} bits: ${parts.join('; ')}.`;
  });
  const neighbours = record.neighbours.map((n) => `${count(n.documents)}: ${f3(n.first)} / ${f3(n.tenth)}`).join('; ');
  return `## Recall at scale

${HOW}

Measured ${record.created_at.slice(0, 10)} on ${cpu.model} (${cpu.arch}, ${cpu.cpus} CPUs) in ${(record.seconds.total / 60).toFixed(1)} minutes, with
\`${record.command}\`: ${count(record.corpus.documents)} documents, ${count(q.measured)} queries (${count(q.judged)} judged, ${count(q.pseudo)} pseudo${q.measured < q.corpus_total ? `; a seeded sample of the corpus' ${count(q.corpus_total)}` : ''}), model \`${record.corpus.fingerprint}\` (${record.corpus.dimension} dimensions). The corpus:

> ${record.corpus.description.replace(/\n+/g, ' ')}

From N = ${count(sizes[0]!)} to ${count(sizes.at(-1)!)}, recall@10 (against the int8 top-10):

${drops.join('\n')}

What the first stage has to find gets closer to the query as N grows: the mean cosine of the
exact float32 1st / 10th neighbour, by N: ${neighbours}.

The smallest multiplier (of ${record.settings.multipliers.join(', ')}) whose recall@10 reaches ${TARGET_RECALL}, against the int8 / the float32 exact top-10:

| first stage | bits | ${sizes.map((n) => `N = ${count(n)}`).join(' | ')} |
|${' --- |'.repeat(sizes.length + 2)}
${smallest.join('\n')}

${chartPath ? `![end-to-end recall@10 against N, per multiplier](${chartPath})\n\n` : ''}Each cell: recall@10 against the int8 exact top-10 / against the float32 one / the float32
top-10's share among the first stage's candidates (the record has every figure).

${head('first stage | bits | m').join('\n')}
${recallRows.join('\n')}
`;
}
