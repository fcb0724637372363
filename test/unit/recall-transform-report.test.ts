/** What bench:recall reports about code transforms (bench/recall/transform-report.ts) and how a fit samples a size (bench/recall/transforms.ts). */
import { describe, expect, it } from 'vitest';
import type { RecallRow } from '../../bench/recall/measure.js';
import { indexBytesPerDocument, type TransformsAtScaleRecord, transformChartSvg, transformsAtScaleMarkdown } from '../../bench/recall/transform-report.js';
import { fitSampleRows } from '../../bench/recall/transforms.js';
import { describeCpu } from '../../src/encoder/cpu.js';

const row = (documents: number, bits: number, stage: 'hamming' | 'asymmetric', multiplier: number, r: number): RecallRow => ({
  documents,
  bits,
  stage,
  multiplier,
  firstStage: { float32: r, int8: r },
  endToEnd: { float32: r - 0.01, int8: r },
});
const grid = (recall: (bits: number, stage: string) => number) =>
  [1000].flatMap((n) => [128, 64].flatMap((bits) => (['hamming', 'asymmetric'] as const).flatMap((stage) => [1, 4].map((m) => row(n, bits, stage, m, recall(bits, stage) + m / 100)))));

const record: TransformsAtScaleRecord = {
  created_at: '2026-12-07T12:00:00.000Z',
  command: 'npm run bench:recall -- --transforms itq',
  cpu: describeCpu('AMD EPYC', new Set(['avx2']), 'x64', 2),
  corpus: { fingerprint: 'abc', dimension: 384, description: 'Passages.', documents: 1000, queries: { measured: 50, judged: 10, pseudo: 40, corpus_total: 50 } },
  settings: { sizes: [1000], bits: [128, 64], stages: ['hamming', 'asymmetric'], multipliers: [1, 4], top_k: 10, seed: 23 },
  rows: grid((bits) => bits / 200),
  transform_rows: grid((bits) => bits / 200 + 0.1).map((r) => ({ ...r, transform: 'itq', makeSeconds: r.bits === 128 ? 5 : 0.1 })),
  fits: [{ transform: 'itq', documents: 1000, sampled: 1000, manifest: {} }],
  neighbours: [{ documents: 1000, first: 0.7, tenth: 0.55 }],
  smallest_multiplier: [],
  seconds: { codes: 1, exact: { float32: 1, int8: 1 }, firstStage: 1, corpus: 1, total: 120 },
};

describe('bytes per document in memory', () => {
  it('is the code, the 4-byte rowid and a tombstone bit (src/first-stage/binary-index.ts)', () => {
    expect(indexBytesPerDocument(384)).toBe(52.125);
    expect(indexBytesPerDocument(64)).toBe(12.125);
  });
});

describe('a fit sample', () => {
  it('takes every document up to the limit, else every ceil(N / limit)-th, as the service samples a collection', () => {
    expect(Array.from(fitSampleRows(5, 10))).toEqual([0, 1, 2, 3, 4]);
    expect(Array.from(fitSampleRows(10, 4))).toEqual([0, 3, 6, 9]);
    expect(fitSampleRows(245_327, 100_000)).toHaveLength(81_776);
  });
});

describe('the transforms section', () => {
  it('has a table per N, first dims beside each transform at m = 4, the best in bold, and the fits', () => {
    const md = transformsAtScaleMarkdown(record, 'compact-codes/chart.svg');
    expect(md).toMatch(/^## Transforms at scale/);
    expect(md).toContain('](compact-codes/chart.svg)');
    expect(md).toContain('| code | first stage | bytes/doc | first dims | itq |');
    // m = 4: 128 / 200 + 0.04 = 0.680 for first dims, 0.780 for itq (recall@10 0.01 lower).
    expect(md).toContain('| 128 bits | Hamming | 20.125 | 0.680 / 0.670 | **0.780** / 0.770 |');
    expect(md).toContain('- itq at N = 1,000: fitted on 1,000 documents; fit and codes in 5.0 + 0.1 s (128, 64 bits)');
  });
});

describe('the transforms chart', () => {
  it('renders to SVG', async () => {
    expect(await transformChartSvg(record, 1000)).toMatch(/^<svg/);
  });
});
