import { readFileSync } from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compose } from '../../src/composition.js';
import { loadConfig } from '../../src/config.js';
import { loadBeirDataset } from '../../src/datasets/beir.js';
import type { Encoder } from '../../src/encoder/encoder.js';
import { runEvaluation } from '../../src/eval/evaluate.js';
import { type EvalReport, summarize } from '../../src/eval/report.js';
import { readEvaluation } from '../../src/models/evaluation-record.js';
import { createTestEncoder, FIXTURE_BUNDLE } from '../helpers/app.js';
import { makeBeirDataset as makeDataset } from '../helpers/beir.js';
import { bundleCopy } from '../helpers/bundles.js';

const run = promisify(execFile);
/** The service's parts over the encoder, on an empty SQLite database in memory (as `qembed eval` composes them without PostgreSQL). */
const inMemory = (e: Encoder) => compose(loadConfig({}, { intraOpThreads: 1 }), { database: 'memory', model: { encoder: e } });

let encoder: Encoder;
let dir: string;
let report: EvalReport;
beforeAll(async () => {
  encoder = await createTestEncoder();
  dir = makeDataset();
  report = await runEvaluation({ dataset: await loadBeirDataset(dir), encoder, compose: inMemory, multipliers: [1, 4] });
});
afterAll(async () => encoder.close());

describe('runEvaluation', () => {
  it('reports every mode with the documented fields', () => {
    expect(report.results.map((r) => [r.mode, r.rescore_multiplier])).toEqual([
      ['float32', null],
      ['int8', null],
      ['binary', null],
      ['binary+int8', 1],
      ['binary+int8', 4],
    ]);
    for (const r of report.results) {
      for (const key of ['ndcg@10', 'recall@10', 'recall@100', 'mrr@10', 'retention', 'fidelity@10', 'bytes_per_doc'] as const) {
        expect(typeof r[key], `${r.mode} ${key}`).toBe('number');
      }
      expect(r['fidelity@10']).toBeGreaterThanOrEqual(0);
      expect(r['fidelity@10']).toBeLessThanOrEqual(1);
    }
    expect(report.dataset).toMatchObject({ documents: 60, queries: 12, judged_queries: 8 });
    expect(report.model.fingerprint).toBe(encoder.fingerprint);
  });

  it('measures float32 against itself: retention and fidelity are exactly 1', () => {
    const f32 = report.results[0]!;
    expect(f32.retention).toBe(1);
    expect(f32['fidelity@10']).toBe(1);
    expect(f32['ndcg@10']).toBeGreaterThan(0);
  });

  it('counts bytes per document for each precision', () => {
    const d = encoder.dimension;
    expect(report.results.map((r) => r.bytes_per_doc)).toEqual([4 * d, d, d / 8, d / 8 + d, d / 8 + d]);
  });

  it('compares the two first stages on the float32 top-10', () => {
    expect(report.first_stage.map((f) => f.method)).toEqual(['hamming', 'asymmetric-4bit']);
    for (const f of report.first_stage) expect(f['recall_float32_top10@40']).toBeGreaterThan(0);
  });

  it('runs as `qembed eval` with a JSON report, and exits 1 under a retention floor it misses', async () => {
    const out = path.join(dir, 'report.json');
    const args = ['--import', 'tsx', 'src/cli/qembed.ts', 'eval', '--dataset', dir, '--bundle', FIXTURE_BUNDLE, '--out', out, '--multipliers', '1,4'];
    const ok = await run(process.execPath, [...args, '--min-retention', '0'], { cwd: path.resolve(import.meta.dirname, '../..') });
    expect(ok.stdout).toMatch(/\| binary\+int8 \| 4 \|/);
    const written = JSON.parse(readFileSync(out, 'utf8')) as EvalReport;
    expect(written.results).toHaveLength(5);
    const cwd = path.resolve(import.meta.dirname, '../..');
    await expect(run(process.execPath, [...args, '--min-retention', '5'], { cwd })).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/below the floor 500\.0%/) });
    await expect(run(process.execPath, [...args, '--min-retention', 'high'], { cwd })).rejects.toMatchObject({ code: 2 });
  });

  it('keeps its headline figures beside the bundle with --record, for GET /models', async () => {
    const bundle = bundleCopy();
    const cwd = path.resolve(import.meta.dirname, '../..');
    const args = ['--import', 'tsx', 'src/cli/qembed.ts', 'eval', '--dataset', dir, '--bundle', bundle, '--multipliers', '1,4', '--record'];
    const ok = await run(process.execPath, args, { cwd });
    expect(ok.stderr).toMatch(/figures recorded in .*evaluation\.json/);
    const fingerprint = (JSON.parse(readFileSync(path.join(bundle, 'manifest.json'), 'utf8')) as { fingerprint: string }).fingerprint;
    const record = readEvaluation(bundle, fingerprint);
    expect(record?.datasets[path.basename(dir)]).toEqual({ ...summarize(report), evaluated_at: expect.any(String) });
    expect(record?.datasets[path.basename(dir)]?.['binary+int8@4_retention']).toBeGreaterThan(0);
    // Figures measured on another bundle are never shown for this one.
    expect(readEvaluation(bundle, '0123456789abcdef')).toBeNull();
  });
});
