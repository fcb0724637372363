/** The evaluation report: JSON schema (docs/quality.md), Markdown table and SVG chart. */
import type { EvaluationSummary } from '../models/evaluation-record.js';

export const MODES = ['float32', 'int8', 'binary', 'binary+int8'] as const;
export type Mode = (typeof MODES)[number];

export interface ModeResult {
  mode: Mode;
  /** Rescore multiplier of binary+int8; null for the other modes. */
  rescore_multiplier: number | null;
  'ndcg@10': number;
  'recall@10': number;
  'recall@100': number;
  'mrr@10': number;
  /** NDCG@10 relative to float32's. */
  retention: number;
  /** Mean fraction of the float32 top-10 found in this mode's top-10, over all queries. */
  'fidelity@10': number;
  /** Bytes a document costs at this mode's precision(s). */
  bytes_per_doc: number;
}

export interface FirstStageResult {
  method: 'hamming' | 'asymmetric-4bit';
  /** Mean fraction of the float32 top-10 inside the first stage's top-40, over all queries. */
  'recall_float32_top10@40': number;
}

export interface EvalReport {
  dataset: { name: string; path: string; documents: number; queries: number; judged_queries: number };
  model: { name: string; fingerprint: string; dimension: number; weights: string };
  created_at: string;
  settings: { top_k: number; recall_depth: number; multipliers: number[]; code_bits?: number };
  results: ModeResult[];
  first_stage: FirstStageResult[];
  durations_s: { ingest: number; queries: number };
}

/** The result of one mode (binary+int8 at one rescore multiplier; null for the other modes). */
export function resultFor(report: EvalReport, mode: Mode, multiplier: number | null = null): ModeResult | undefined {
  return report.results.find((r) => r.mode === mode && r.rescore_multiplier === multiplier);
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const f3 = (x: number) => x.toFixed(3);

export function markdownTable(report: EvalReport): string {
  const rows = report.results.map(
    (r) =>
      `| ${r.mode} | ${r.rescore_multiplier ?? '–'} | ${f3(r['ndcg@10'])} | ${f3(r['recall@10'])} | ${f3(r['recall@100'])} | ${f3(r['mrr@10'])} | ${pct(r.retention)} | ${pct(r['fidelity@10'])} | ${r.bytes_per_doc} |`,
  );
  return [
    '| mode | rescore multiplier | NDCG@10 | Recall@10 | Recall@100 | MRR@10 | retention | fidelity@10 | bytes/doc |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

export function firstStageTable(report: EvalReport): string {
  return [
    '| first stage | float32 top-10 found in its top-40 |',
    '| --- | --- |',
    ...report.first_stage.map((f) => `| ${f.method} | ${pct(f['recall_float32_top10@40'])} |`),
  ].join('\n');
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

interface Panel {
  title: string;
  xLabel: string;
  xs: number[];
  log: boolean;
  series: { name: string; color: string; points: { x: number; y: number; label?: string }[]; line: boolean }[];
}

/** Two panels side by side: retention against bytes per document, and against the rescore multiplier. */
export function retentionChartSvg(reports: EvalReport[]): string {
  const palette = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];
  const all = reports.flatMap((r) => r.results.map((x) => x.retention));
  const yMin = Math.min(0.8, Math.floor(Math.min(...all) * 20) / 20);
  const yMax = Math.max(1.0, Math.ceil(Math.max(...all) * 50) / 50);

  const panels: Panel[] = [
    {
      title: 'Retention (NDCG@10 vs float32) against bytes per document',
      xLabel: 'bytes per document (log scale)',
      xs: [...new Set(reports.flatMap((r) => r.results.map((x) => x.bytes_per_doc)))],
      log: true,
      series: reports.map((r, i) => ({
        name: r.dataset.name,
        color: palette[i % palette.length]!,
        line: false,
        points: r.results
          .filter((x) => x.mode !== 'binary+int8' || x.rescore_multiplier === 4)
          .map((x) => ({ x: x.bytes_per_doc, y: x.retention, label: x.mode === 'binary+int8' ? 'binary+int8 ×4' : x.mode })),
      })),
    },
    {
      title: 'binary+int8 retention against the rescore multiplier',
      xLabel: 'rescore multiplier (log scale)',
      xs: [...new Set(reports.flatMap((r) => r.settings.multipliers))],
      log: true,
      series: reports.map((r, i) => ({
        name: r.dataset.name,
        color: palette[i % palette.length]!,
        line: true,
        points: r.results.filter((x) => x.mode === 'binary+int8').map((x) => ({ x: x.rescore_multiplier!, y: x.retention })),
      })),
    },
  ];

  return panelsSvg(panels, yMin, yMax);
}

/** Panels side by side (460 × 320 each) sharing the retention axis [yMin, yMax]. */
export function panelsSvg(panels: Panel[], yMin: number, yMax: number): string {
  const W = 460;
  const H = 320;
  const margin = { l: 56, r: 16, t: 36, b: 48 };
  const drawPanel = (p: Panel, ox: number): string => {
    const xv = (x: number) => (p.log ? Math.log2(x) : x);
    const xsT = p.xs.map(xv);
    const x0 = Math.min(...xsT);
    const x1 = Math.max(...xsT);
    const px = (x: number) => ox + margin.l + ((xv(x) - x0) / (x1 - x0 || 1)) * (W - margin.l - margin.r);
    const py = (y: number) => margin.t + (1 - (y - yMin) / (yMax - yMin)) * (H - margin.t - margin.b);
    const out: string[] = [];
    out.push(`<text x="${ox + W / 2}" y="18" text-anchor="middle" font-size="13" font-weight="bold">${esc(p.title)}</text>`);
    out.push(`<rect x="${ox + margin.l}" y="${margin.t}" width="${W - margin.l - margin.r}" height="${H - margin.t - margin.b}" fill="none" stroke="#999"/>`);
    for (let y = Math.ceil(yMin * 20) / 20; y <= yMax + 1e-9; y += 0.05) {
      out.push(`<line x1="${ox + margin.l}" x2="${ox + W - margin.r}" y1="${py(y)}" y2="${py(y)}" stroke="#eee"/>`);
      out.push(`<text x="${ox + margin.l - 6}" y="${py(y) + 4}" text-anchor="end" font-size="11">${(y * 100).toFixed(0)}%</text>`);
    }
    out.push(`<line x1="${ox + margin.l}" x2="${ox + W - margin.r}" y1="${py(1)}" y2="${py(1)}" stroke="#666" stroke-dasharray="4 3"/>`);
    for (const x of [...p.xs].sort((a, b) => a - b)) {
      out.push(`<text x="${px(x)}" y="${H - margin.b + 16}" text-anchor="middle" font-size="11">${x}</text>`);
    }
    out.push(`<text x="${ox + W / 2}" y="${H - 10}" text-anchor="middle" font-size="12">${esc(p.xLabel)}</text>`);
    p.series.forEach((s, si) => {
      const pts = [...s.points].sort((a, b) => a.x - b.x);
      if (s.line && pts.length > 1) out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${pts.map((q) => `${px(q.x)},${py(q.y)}`).join(' ')}"/>`);
      for (const q of pts) {
        out.push(`<circle cx="${px(q.x)}" cy="${py(q.y)}" r="4" fill="${s.color}"/>`);
        if (q.label) out.push(`<text x="${px(q.x) + 6}" y="${py(q.y) - 6 - si * 12}" font-size="10" fill="${s.color}">${esc(q.label)}</text>`);
      }
      out.push(`<rect x="${ox + margin.l + 10}" y="${margin.t + 8 + si * 16}" width="10" height="10" fill="${s.color}"/>`);
      out.push(`<text x="${ox + margin.l + 26}" y="${margin.t + 17 + si * 16}" font-size="11">${esc(s.name)}</text>`);
    });
    return out.join('\n');
  };

  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${panels.length * W}" height="${H}" viewBox="0 0 ${panels.length * W} ${H}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...panels.map((p, i) => drawPanel(p, i * W)),
    '</svg>',
    '',
  ].join('\n');
}

/** Retention of one first-stage code per length, as docs/quality/compact-codes.json records it. */
export interface CompactCodesRecord {
  dataset: string;
  source: string;
  /** Method (e.g. "PTQ, first dims") → code bits → retention of binary alone and of binary+int8 at multiplier 4. */
  methods: Record<string, Record<string, { binary: number; 'binary+int8@4': number }>>;
}

/** Retention against bytes per document in memory, one line per method: binary alone, and binary + int8 ×4. */
export function compactCodesChartSvg(record: CompactCodesRecord): string {
  const palette = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd'];
  const methods = Object.entries(record.methods);
  const all = methods.flatMap(([, lengths]) => Object.values(lengths).flatMap((r) => [r.binary, r['binary+int8@4']]));
  const yMin = Math.floor(Math.min(...all) * 20) / 20;
  const yMax = Math.max(1.0, Math.ceil(Math.max(...all) * 50) / 50);
  const xs = [...new Set(methods.flatMap(([, lengths]) => Object.keys(lengths).map((bits) => Number(bits) / 8)))];
  const panel = (title: string, key: 'binary' | 'binary+int8@4'): Panel => ({
    title,
    xLabel: 'bytes per document in memory (log scale)',
    xs,
    log: true,
    series: methods.map(([name, lengths], i) => ({
      name,
      color: palette[i % palette.length]!,
      line: true,
      points: Object.entries(lengths).map(([bits, r]) => ({ x: Number(bits) / 8, y: r[key] })),
    })),
  });
  return panelsSvg([panel(`${record.dataset}: binary first stage alone`, 'binary'), panel(`${record.dataset}: binary + int8 rescoring ×4`, 'binary+int8@4')], yMin, yMax);
}

const round4 = (x: number | undefined) => (x === undefined ? null : Math.round(x * 1e4) / 1e4);

/** The headline figures of a report, as a bundle records them (models/evaluation-record.ts). */
export function summarize(report: EvalReport): EvaluationSummary {
  const rescored = resultFor(report, 'binary+int8', 4);
  const binary = resultFor(report, 'binary');
  return {
    evaluated_at: report.created_at,
    documents: report.dataset.documents,
    judged_queries: report.dataset.judged_queries,
    'float32_ndcg@10': round4(resultFor(report, 'float32')?.['ndcg@10']) ?? 0,
    'binary+int8@4_retention': round4(rescored?.retention),
    'binary+int8@4_fidelity@10': round4(rescored?.['fidelity@10']),
    binary_retention: round4(binary?.retention),
    'binary_fidelity@10': round4(binary?.['fidelity@10']),
  };
}
