import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorOf, startTestApp, type TestApp } from '../helpers/app.js';

const root = mkdtempSync(path.join(tmpdir(), 'qembed-datasets-'));
const outside = mkdtempSync(path.join(tmpdir(), 'qembed-outside-'));
function dataset(dir: string, withQrels: boolean): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'corpus.jsonl'), '{"_id": "d1", "text": "one"}\n');
  if (withQrels) {
    mkdirSync(path.join(dir, 'qrels'));
    writeFileSync(path.join(dir, 'queries.jsonl'), '{"_id": "q1", "text": "first?"}\n');
    writeFileSync(path.join(dir, 'qrels', 'test.tsv'), 'q1\td1\t1\n');
  }
}
dataset(path.join(root, 'corpus-only'), false);
dataset(path.join(root, 'labelled'), true);
mkdirSync(path.join(root, 'no-corpus'));
dataset(outside, false);
symlinkSync(outside, path.join(root, 'escape'));

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ datasetsDir: root });
});
afterAll(async () => t.close());

const post = (payload: unknown) => t.app.inject({ method: 'POST', url: '/train-jobs', payload: payload as object });

describe('POST /train-jobs', () => {
  it('queues a job with every default filled in', async () => {
    const res = await post({ dataset: 'corpus-only' });
    expect(res.statusCode).toBe(201);
    const job = res.json();
    expect(job).toMatchObject({ state: 'queued', progress: 0, cancel_requested: false, result: null });
    expect(job.spec).toMatchObject({
      dataset: 'corpus-only',
      mode: 'head',
      loss: 'distill',
      precisions: ['float32', 'int8', 'binary'],
      weights: [1, 1, 1],
      steps: null,
      epochs: 20,
      crop_queries: true,
      base_model: { fingerprint: t.encoder.fingerprint },
    });
    // The worker gets the resolved folder (the stored spec); answers do not show server paths.
    expect(job.spec.dataset_path).toBeUndefined();
    expect(t.jobs.get(job.id)!.spec.dataset_path).toBe(path.join(root, 'corpus-only'));
    expect((await t.app.inject({ method: 'GET', url: `/train-jobs/${job.id}` })).json().id).toBe(job.id);
  });

  it('takes a contrastive job on a labelled dataset', async () => {
    const res = await post({ dataset: 'labelled', loss: 'mnrl', precisions: ['float32', 'binary'], weights: [1, 2], steps: 50, asymmetric: true });
    expect(res.statusCode).toBe(201);
    expect(res.json().spec).toMatchObject({ loss: 'mnrl', weights: [1, 2], steps: 50, asymmetric: true });
  });

  const bad: [string, unknown, number, string][] = [
    ['a path outside the root', { dataset: '../etc' }, 400, 'QEMBED_PATH_OUTSIDE_ROOT'],
    ['an absolute path', { dataset: '/etc' }, 400, 'QEMBED_PATH_OUTSIDE_ROOT'],
    ['a symbolic link leaving the root', { dataset: 'escape' }, 400, 'QEMBED_PATH_OUTSIDE_ROOT'],
    ['a dataset that does not exist', { dataset: 'nope' }, 404, 'QEMBED_DATASET_NOT_FOUND'],
    ['a dataset without corpus.jsonl', { dataset: 'no-corpus' }, 400, 'QEMBED_INVALID_JOB'],
    ['an unknown mode', { dataset: 'corpus-only', mode: 'lora' }, 400, 'QEMBED_INVALID_REQUEST'],
    ['a precision outside the set', { dataset: 'corpus-only', precisions: ['int4'] }, 400, 'QEMBED_INVALID_REQUEST'],
    ['weights that do not match the precisions', { dataset: 'corpus-only', precisions: ['float32', 'binary'], weights: [1] }, 400, 'QEMBED_INVALID_JOB'],
    ['repeated precisions', { dataset: 'corpus-only', precisions: ['binary', 'binary'] }, 400, 'QEMBED_INVALID_JOB'],
    ['all-zero weights', { dataset: 'corpus-only', precisions: ['binary'], weights: [0] }, 400, 'QEMBED_INVALID_JOB'],
    ['a contrastive loss without qrels', { dataset: 'corpus-only', loss: 'mnrl' }, 400, 'QEMBED_INVALID_JOB'],
    ['zero steps', { dataset: 'corpus-only', steps: 0 }, 400, 'QEMBED_INVALID_REQUEST'],
    ['an unknown base model', { dataset: 'corpus-only', base_model: 'nope' }, 404, 'QEMBED_MODEL_NOT_FOUND'],
    ['an unknown property', { dataset: 'corpus-only', optimizer: 'sgd' }, 400, 'QEMBED_INVALID_REQUEST'],
    ['a missing dataset', { mode: 'head' }, 400, 'QEMBED_INVALID_REQUEST'],
  ];
  for (const [name, payload, status, code] of bad) {
    it(`refuses ${name}, queueing nothing`, async () => {
      const before = t.jobs.list().length;
      const res = await post(payload);
      expect(res.statusCode).toBe(status);
      expect(errorOf(res).code).toBe(code);
      expect(t.jobs.list().length).toBe(before);
    });
  }
});

describe('GET and DELETE /train-jobs', () => {
  it('lists newest first, filters by state, and 404s an unknown id', async () => {
    const all = (await t.app.inject({ method: 'GET', url: '/train-jobs' })).json().jobs as { state: string }[];
    expect(all.length).toBeGreaterThanOrEqual(2);
    expect((await t.app.inject({ method: 'GET', url: '/train-jobs?state=succeeded' })).json().jobs).toEqual([]);
    const missing = await t.app.inject({ method: 'GET', url: '/train-jobs/no-such-job' });
    expect(missing.statusCode).toBe(404);
    expect(errorOf(missing).code).toBe('QEMBED_JOB_NOT_FOUND');
    expect((await t.app.inject({ method: 'GET', url: '/train-jobs?state=done' })).statusCode).toBe(400);
  });

  it('cancels a queued job at once and asks a running one to stop', async () => {
    const queued = (await post({ dataset: 'corpus-only' })).json();
    const cancelled = await t.app.inject({ method: 'DELETE', url: `/train-jobs/${queued.id}` });
    expect(cancelled.json()).toMatchObject({ state: 'cancelled' });
    const running = (await post({ dataset: 'corpus-only' })).json();
    claim(running.id, Date.now() + 60_000); // as a worker would
    const asked = await t.app.inject({ method: 'DELETE', url: `/train-jobs/${running.id}` });
    expect(asked.json()).toMatchObject({ state: 'running', cancel_requested: true });
  });

  it('fails a running job whose worker stopped reporting, instead of leaving it running', async () => {
    const job = (await post({ dataset: 'corpus-only' })).json();
    claim(job.id, Date.now() - 1000);
    const seen = (await t.app.inject({ method: 'GET', url: `/train-jobs/${job.id}` })).json();
    expect(seen.state).toBe('failed');
    expect(seen.message).toMatch(/lease expired/);
  });
});

/** What a worker's claim does to a row (python -m qembed_worker work). */
function claim(id: string, leaseUntil: number): void {
  t.jobs.db.prepare("UPDATE train_jobs SET state = 'running', worker = 'test-worker', started_at = ?, lease_expires_at = ? WHERE id = ?").run(new Date().toISOString(), leaseUntil, id);
}
