/** What the recall bench reports (bench/recall/report.ts): the smallest multiplier holding 0.99, the docs section, the chart. */
import { describe, expect, it } from 'vitest';
import type { RecallRow } from '../../bench/recall/measure.js';
import { type RecallAtScaleRecord, recallAtScaleMarkdown, recallChartSvg, recallTable, smallestMultipliers } from '../../bench/recall/report.js';
import { describeCpu } from '../../src/encoder/cpu.js';

/** Rows of one first stage at 384 bits whose end-to-end recall (int8; float32 a little lower) is `recall(N, m)`. */
function rowsOf(recall: (n: number, m: number) => number): RecallRow[] {
  return [1000, 10_000].flatMap((documents) =>
    [1, 2, 4].map((multiplier) => {
      const r = recall(documents, multiplier);
      return { documents, bits: 384, stage: 'hamming' as const, multiplier, firstStage: { float32: r, int8: r }, endToEnd: { float32: r - 0.01, int8: r } };
    }),
  );
}
// Recall falls with N and rises with m: 0.99 held (int8) from m = 1 at 1,000 documents and from m = 4 at 10,000.
const figures: Record<number, Record<number, number>> = { 1000: { 1: 0.995, 2: 1, 4: 1 }, 10_000: { 1: 0.95, 2: 0.97, 4: 1 } };
const rows = rowsOf((n, m) => figures[n]![m]!);

describe('smallestMultipliers', () => {
  it('is the smallest measured m whose recall@10 reaches 0.99, per reference; null when none does', () => {
    expect(smallestMultipliers(rows)).toEqual([
      { documents: 1000, bits: 384, stage: 'hamming', multiplier: { int8: 1, float32: 2 } },
      { documents: 10_000, bits: 384, stage: 'hamming', multiplier: { int8: 4, float32: 4 } },
    ]);
    expect(smallestMultipliers(rows, 0.9999)[1]!.multiplier).toEqual({ int8: 4, float32: null });
  });
});

describe('the printed table', () => {
  it('has a line per row, figures to 3 decimals', () => {
    const lines = recallTable(rows).split('\n');
    expect(lines).toHaveLength(1 + rows.length);
    expect(lines[1]).toMatch(/^1,000 +384 +hamming +1 +10 +0\.995 +0\.995 +0\.985 +0\.995$/);
  });
});

describe('the docs section', () => {
  it('says how to run the bench before anything is measured', () => {
    const md = recallAtScaleMarkdown(undefined);
    expect(md).toMatch(/^## Recall at scale\n/);
    expect(md).toContain('npm run bench:recall -- --docs');
    expect(md).toContain('Not measured yet');
  });

  it('shows a record: where it ran, the smallest multipliers, every figure', () => {
    const record: RecallAtScaleRecord = {
      created_at: '2026-12-07T12:00:00.000Z',
      command: 'npm run bench:recall -- --sizes 1000,10000',
      cpu: describeCpu('AMD EPYC', new Set(['avx2']), 'x64', 2),
      corpus: { fingerprint: 'abc', dimension: 384, description: 'Passages of somewhere.', documents: 10_000, queries: { measured: 50, judged: 10, pseudo: 40, corpus_total: 50 } },
      settings: { sizes: [1000, 10_000], bits: [384], stages: ['hamming'], multipliers: [1, 2, 4], top_k: 10, seed: 23 },
      rows,
      neighbours: [
        { documents: 1000, first: 0.7, tenth: 0.55 },
        { documents: 10_000, first: 0.8, tenth: 0.65 },
      ],
      smallest_multiplier: smallestMultipliers(rows),
      seconds: { codes: 1, exact: { float32: 1, int8: 1 }, firstStage: 1, corpus: 1, total: 120 },
    };
    const md = recallAtScaleMarkdown(record, 'quality/recall-at-scale.svg');
    expect(md).toContain('on AMD EPYC (x64, 2 CPUs) in 2.0 minutes');
    expect(md).toContain('`npm run bench:recall -- --sizes 1000,10000`: 10,000 documents, 50 queries (10 judged, 40 pseudo)');
    expect(md).toContain('> Passages of somewhere.');
    expect(md).toContain('](quality/recall-at-scale.svg)');
    expect(recallAtScaleMarkdown(record)).not.toContain('.svg)');
    expect(md).toContain('| Hamming | 384 | 1 / 2 | 4 / 4 |');
    expect(md).toContain('| Hamming | 384 | 1 | 0.995 / 0.985 / 0.995 | 0.950 / 0.940 / 0.950 |');
    expect(md).toContain('- Hamming, 384 bits: at m = 1 it falls: 0.995 to 0.950 (against float32: 0.985 to 0.940); at m = 4 it holds: 1.000 to 1.000 (against float32: 0.990 to 0.990).');
    expect(md).toContain('by N: 1,000: 0.700 / 0.550; 10,000: 0.800 / 0.650.');
  });
});

describe('the chart', () => {
  it('renders to SVG headless', async () => {
    const svg = await recallChartSvg(rows);
    expect(svg).toMatch(/^<svg/);
    expect(svg).toContain('recall@10');
  });
});
