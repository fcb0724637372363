/**
 * Benchmarks that cannot rot unseen: every `npm run bench:*`, `npm run soak`, `npm run
 * quality:report` and the bench scripts run here as processes, as a user runs them, in their
 * --smoke mode (seconds: tiny sizes, the test fixture's bundle, one round). Their figures mean
 * nothing here; a test fails when a command exits non-zero, when its table is missing, or when
 * one of the correctness checks a benchmark prints fails (the scans found the same distances,
 * the SQL first stage the same top 40 as the index).
 *
 * Dependencies (helpers/dependencies.ts: skipped with a notice outside CI, failing under CI): the
 * worker's Python (TEST_WORKER_PYTHON) for bench:encode's Python stages, FAISS in bench:search
 * and the .py scripts; PostgreSQL (TEST_POSTGRES_BIN) for bench:postgres; the default bundles
 * (TEST_MODELS_DIR) for bench:search's server and ingest stages, which need its 384 dimensions.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/paths.js';
import { FIXTURE_BUNDLE } from '../helpers/app.js';
import { recalibratedCopy } from '../helpers/bundles.js';
import { requirePath, workerPython } from '../helpers/dependencies.js';
import { postgresBin, postgresNotice } from '../helpers/postgres.js';

const python = workerPython('the smoke runs of the benchmarks that use Python (bench:encode, bench:search, bench/*.py)');
const withPostgres = postgresNotice('the smoke run of bench:postgres');
const modelsDir = requirePath(
  "bench:search's server and ingest stages in its smoke run (a 384-dimension bundle)",
  'TEST_MODELS_DIR',
  'dir',
  'a folder holding the default bundles; ./scripts/test builds them and sets it',
);

const work = mkdtempSync(path.join(tmpdir(), 'qembed-bench-smoke-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Runs `command args` in the repository with `env` added; its exit code and its output (stdout and stderr, in order). */
function run(command: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: projectRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}
const npmRun = (script: string, args: string[], env: Record<string, string> = {}) => run('npm', ['run', '--silent', script, '--', '--smoke', ...args], env);

/** Exit 0, or the output in the failure message. */
function succeeded(r: { code: number | null; output: string }): string {
  expect(r.code, r.output).toBe(0);
  return r.output;
}

/** A small BEIR collection of generated passages and queries (no ../shared needed). */
function generatedDataset(): string {
  const dir = path.join(work, 'dataset');
  mkdirSync(path.join(dir, 'qrels'), { recursive: true });
  const words = ['rivers', 'stars', 'bread', 'engines', 'music', 'tides', 'maps', 'glass'];
  writeFileSync(path.join(dir, 'corpus.jsonl'), Array.from({ length: 200 }, (_, i) => JSON.stringify({ _id: `d${i}`, text: `${words[i % 8]} and ${words[(i * 3) % 8]}, passage ${i}` })).join('\n'));
  writeFileSync(path.join(dir, 'queries.jsonl'), Array.from({ length: 20 }, (_, i) => JSON.stringify({ _id: `q${i}`, text: `${words[i % 8]} ${words[(i * 5) % 8]}` })).join('\n'));
  writeFileSync(path.join(dir, 'qrels', 'test.tsv'), `query-id\tcorpus-id\tscore\n${Array.from({ length: 20 }, (_, i) => `q${i}\td${i}\t1`).join('\n')}\n`);
  return dir;
}

describe('benchmarks in --smoke mode', { timeout: 300_000 }, () => {
  it.runIf(python)('npm run bench:encode: every stage, Python and sentence-transformers included, and its ratios', async () => {
    const out = succeeded(await npmRun('bench:encode', ['--python', python!]));
    for (const stage of ['(a) served in-process, calls of 32', '(b) Python onnxruntime best batch', '(c) sentence-transformers, batch 32', '(d) HTTP, 32 concurrent']) expect(out).toContain(stage);
    expect(out).toMatch(/ratios on .*\n.*\(a\) served, calls of 32 \/ \(b\) Python onnxruntime float32, best batch +\d+\.\d\d/);
  });

  it('bench/encode-compare.ts: two bundles, their ratio table', async () => {
    const other = recalibratedCopy(work, 'other');
    const out = succeeded(await run(process.execPath, ['--import', 'tsx', 'bench/encode-compare.ts', '--smoke', '--bundle', FIXTURE_BUNDLE, '--bundle', other]));
    expect(out).toMatch(new RegExp(`${other.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} +calls of 1: [\\d.]+ texts/s, [\\d.]+x`));
  });

  it.runIf(python)('npm run bench:search: every stage, and all scans find the same distances', async () => {
    const args = ['--python', python!];
    // With the default bundle, the real-data path (a dataset generated here) and stages (g), (h).
    if (modelsDir) args.push('--bundle', path.join(modelsDir, 'default'), '--dataset', generatedDataset());
    const out = succeeded(await npmRun('bench:search', args));
    for (const stage of ['(a) search, 1 thread', '(b) first stage alone', 'FAISS IndexBinaryFlat', '(c) index memory', '(d) search with a filter', '(e) float32 brute force', '(f) compact first stages', 'summary']) expect(out).toContain(stage);
    expect(out).toMatch(/same distances: yes/);
    expect(out).not.toMatch(/same distances: NO/);
    if (modelsDir) {
      expect(out).toMatch(/\(g\) server: up in/);
      expect(out).toMatch(/\(h\) qembed ingest of 1,000 precomputed vectors/);
    }
  });

  it('npm run bench:compat: both endpoints and their ratio', async () => {
    const out = succeeded(await npmRun('bench:compat', []));
    expect(out).toMatch(/round 1: \/encode [\d.]+ req\/s, \/v1\/embeddings [\d.]+ req\/s/);
    expect(out).toMatch(/\/v1\/embeddings \/ \/encode, median of 1 rounds: \d\.\d{3}/);
  });

  it.runIf(withPostgres)('npm run bench:postgres: every first stage, the SQL one with the same top 40 as the index', async () => {
    const out = succeeded(await npmRun('bench:postgres', [], { TEST_POSTGRES_BIN: postgresBin! }));
    for (const stage of ['ingest of 2,000 documents', 'PostgreSQL exact', 'PostgreSQL HNSW', 'summary']) expect(out).toContain(stage);
    const same = /same top 40 as SQLite for (\d+) of (\d+) queries/.exec(out);
    expect(same, out).not.toBeNull();
    expect(same![1]).toBe(same![2]);
  });

  it('npm run bench:recall: its table, its summary, every check ok, its record, chart and page section', async () => {
    const json = path.join(work, 'recall-at-scale.json');
    const chart = path.join(work, 'quality', 'recall-at-scale.svg');
    mkdirSync(path.dirname(chart), { recursive: true });
    const page = path.join(work, 'quality.md');
    writeFileSync(page, '# Retrieval quality\n\nkept\n');
    const transformChart = path.join(work, 'compact-codes', 'transforms.svg');
    const transformPage = path.join(work, 'compact-codes.md');
    const out = succeeded(
      await npmRun('bench:recall', ['--json', json, '--chart', chart, '--page', page, '--transforms', 'rotation', '--transform-chart', transformChart, '--transform-page', transformPage]),
    );
    expect(out).toMatch(/documents +bits +first stage +m +candidates +first stage vs f32 +vs int8 +recall@10 vs f32 +vs int8/);
    expect(out).toContain('smallest m holding end-to-end recall@10 >= 0.99');
    expect(out.match(/^check: .*: ok$/gm)?.length, out).toBe(4);
    expect(out).toMatch(/first-stage recall@40 of the float32 top-10 .*\nN \| bits \| first stage \| first dims \| rotation\n/);
    const record = JSON.parse(readFileSync(json, 'utf8')) as { rows: unknown[]; transform_rows: unknown[]; settings: { sizes: number[]; bits: number[]; stages: string[]; multipliers: number[] } };
    const { sizes, bits, stages, multipliers } = record.settings;
    expect(record.rows).toHaveLength(sizes.length * bits.length * stages.length * multipliers.length);
    expect(record.transform_rows).toHaveLength(record.rows.length); // one transform beside first dims
    expect(readFileSync(chart, 'utf8')).toMatch(/^<svg/);
    expect(readFileSync(page, 'utf8')).toMatch(/^# Retrieval quality\n\nkept\n\n<!-- section recall-at-scale[^\n]*\n## Recall at scale\n[\s\S]*\]\(quality\/recall-at-scale\.svg\)[\s\S]*<!-- \/section recall-at-scale -->\n$/);
    expect(readFileSync(transformChart, 'utf8')).toMatch(/^<svg/);
    expect(readFileSync(transformPage, 'utf8')).toMatch(/<!-- section transforms-at-scale[^\n]*\n## Transforms at scale[\s\S]*\]\(compact-codes\/transforms\.svg\)[\s\S]*\| first dims \| rotation \|[\s\S]*<!-- \/section transforms-at-scale -->\n$/);
  });

  it('npm run soak: mixed load, every request answered, a clean exit', async () => {
    const out = succeeded(await npmRun('soak', []));
    expect(out).toMatch(/total over 0\.05 min: encode \d+ .* \| ingest \d+ .* \| search \d+ /);
    expect(out).toContain('server exit: code 0');
  });

  it('npm run bench:quality-cost: both processes loaded in turn, their ratio, and the measuring one measured meanwhile', async () => {
    const out = succeeded(await npmRun('bench:quality-cost', []));
    expect(out).toMatch(/round 1: (measuring|off) [\d.]+ searches\/s .*, (measuring|off) [\d.]+ searches\/s/);
    expect(out).toMatch(/ratio measuring \/ off \(searches\/s over 1 rounds\): \d+\.\d{3}/);
    expect(out).toContain('check the measuring process measured during the load: ok');
    expect(out).toContain('check no search failed: ok');
  });

  it.runIf(python)('npm run bench:fit-cost: searches with and without a fit beside them, in paired turns, and their ratio', async () => {
    const out = succeeded(await npmRun('bench:fit-cost', ['--python', python!]));
    expect(out).toMatch(/round 1: with the fit [\d.]+ searches\/s, without [\d.]+; ratio \d+\.\d{3}/);
    expect(out).toMatch(/ratio with \/ without the fit over 1 rounds: \d+\.\d{3}/);
    expect(out).toContain('check no search failed: ok');
  });

  it('npm run bench:transform-codes: codes from int8 codes per transform, the SIMD kernel against the scalar scan, on one and two threads, and a whole switch', async () => {
    const out = succeeded(await npmRun('bench:transform-codes', []));
    expect(out).toMatch(/32 bits: first dims [\d,]+ documents\/s\n/);
    expect(out).toMatch(/seeded rotation: scalar [\d,]+ documents\/s; simd [\d,]+ documents\/s \(\d+\.\d{2}x scalar\), one thread/);
    expect(out).toMatch(/fitted \(dense\): simd on 2 threads [\d,]+ documents\/s \(\d+\.\d{2}x one thread\)/);
    expect(out).toMatch(/switch of a 3,000-document collection to a 32-bit fitted transform \(switched; [^)]*\): [\d.]+ s, [\d,]+ documents\/s \(\d+\.\d{2}x the one-thread kernel/);
  });

  it('npm run bench:recall-service: the estimate against held-out queries at every size, and auto', async () => {
    const page = path.join(work, 'recall-service.md');
    const out = succeeded(await npmRun('bench:recall-service', ['--page', page]));
    expect(out).toMatch(/N=\d+ \d+ bits hamming: estimate from \d+ (queries|documents)/);
    expect(out).toMatch(/auto \(target 0\.99\): multiplier \d+/);
    expect(out).toContain('check every size measured its served queries and every estimate lies in its interval: ok');
    expect(readFileSync(page, 'utf8')).toMatch(/<!-- section recall-service:[\s\S]*## Recall measured by the service[\s\S]*\| N \| bits \| first stage \| auto chose/);
  });

  it('npm run quality:report: the page and its figures, written where --out says', async () => {
    const out = path.join(work, 'docs');
    succeeded(await npmRun('quality:report', ['--out', out]));
    expect(readFileSync(path.join(out, 'quality.md'), 'utf8')).toMatch(/^# Retrieval quality\n[\s\S]*## msmarco-5k[\s\S]*## business-reports/);
    for (const file of ['msmarco-5k.json', 'business-reports.json', 'retention.svg', 'compact-codes.svg']) expect(existsSync(path.join(out, 'quality', file)), file).toBe(true);
  });

  it('npm run bench:recall-corpus: the fixture corpus encoded and cached, then read back from its cache', async () => {
    const env = { QEMBED_RECALL_CACHE: path.join(work, 'recall-corpus') };
    const first = succeeded(await npmRun('bench:recall-corpus', [], env));
    expect(first).toMatch(/encoded \d+\/\d+ passages, [\d.]+ texts\/s/);
    expect(first).toMatch(/summary:\n {2}passages: \d+ \(fixtures \d+.*\), 32 dimensions\n {2}queries: \d+ \((judged \d+, )?pseudo 40;/);
    const cache = /cache: (\S+) /.exec(first)![1]!;
    for (const file of ['passages.npy', 'queries.npy', 'manifest.json']) expect(existsSync(path.join(cache, file)), file).toBe(true);
    // The same texts and bundle: the vectors come from the cache, nothing is encoded again.
    const second = succeeded(await npmRun('bench:recall-corpus', [], env));
    expect(second).not.toMatch(/recall-corpus: encod/);
    expect(second).toContain(`cache: ${cache} `);
  });

  it.runIf(python)('bench/int8_agreement.py: a bundle agrees with itself', async () => {
    const out = succeeded(await run(python!, ['bench/int8_agreement.py', '--bundle', FIXTURE_BUNDLE, '--reference', FIXTURE_BUNDLE, '--dataset', generatedDataset(), '--passages', '50']));
    const result = JSON.parse(out.trim().split('\n').at(-1)!) as { passages: number; mean_cosine: number; min_cosine: number };
    expect(result.passages).toBe(50);
    // The same graph on the same texts: cosines of 1 up to float32 rounding, printed to 6 decimals.
    expect(result.min_cosine).toBeCloseTo(1, 5);
  });
});
