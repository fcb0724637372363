/**
 * The service's side of the transform fit queue (jobs/fit-jobs.ts) on the real jobs.sqlite
 * schema: jobs are created under the caller's id with a checked spec, listed by collection and
 * state, cancelled, reaped when their worker dies, and their result is taken exactly once.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { createFitJobs, type FitJobs, type FitJobSpec, fitJobFiles } from '../../src/jobs/fit-jobs.js';
import { createTrainJobs } from '../../src/jobs/train-jobs.js';
import { projectRoot } from '../../src/paths.js';
import { type Db, openDatabase } from '../../src/store/database.js';

const specOf = (id: string, collection = 'docs'): FitJobSpec => ({
  collection,
  collection_id: 1,
  model: '0123456789abcdef',
  bundle: '/models/default',
  sample: fitJobFiles(id).sample,
  out: fitJobFiles(id).out,
  bits: [128, 64],
  method: 'qat',
  seed: 0,
  holdout: 1000,
});
const jobsMigrations = path.join(projectRoot, 'migrations', 'jobs');

let db: Db;
let jobs: FitJobs;
beforeEach(() => {
  db = openDatabase({ file: ':memory:', migrationsDir: jobsMigrations });
  jobs = createFitJobs(db);
});

/** What a worker does when it claims a job and when it finishes one (worker/qembed_worker/jobs/queue.py). */
const claim = (id: string, leaseUntil = Date.now() + 60_000) =>
  db.prepare("UPDATE fit_jobs SET state = 'running', worker = 'w', started_at = ?, lease_expires_at = ? WHERE id = ?").run(new Date().toISOString(), leaseUntil, id);
const succeed = (id: string) =>
  db.prepare("UPDATE fit_jobs SET state = 'succeeded', finished_at = ?, progress = 1, result = ? WHERE id = ?").run(new Date().toISOString(), JSON.stringify({ fingerprint: 'fedcba9876543210' }), id);

describe('fit jobs', () => {
  it('are created queued under the caller\'s id, with the files that id names', () => {
    expect(fitJobFiles('x')).toEqual({ dir: 'fit-jobs/x', sample: 'fit-jobs/x/codes.npy', out: 'fit-jobs/x/transform' });
    const job = jobs.create('j1', specOf('j1'));
    expect(job).toMatchObject({ id: 'j1', state: 'queued', collection: 'docs', progress: 0, cancel_requested: false, result: null, imported_at: null, lease_expires_at: null });
    expect(job.spec).toEqual(specOf('j1'));
    expect(jobs.get('j1')).toEqual(job);
    expect(jobs.get('nope')).toBeUndefined();
  });

  it('refuse an id that cannot be a folder, a spec that breaks the contract, and another job\'s files', () => {
    expect(() => jobs.create('../up', specOf('../up'))).toThrow(expect.objectContaining({ code: 'QEMBED_INVALID_JOB_ID' }));
    expect(() => jobs.create('j', { ...specOf('j'), bits: [12] })).toThrow(/breaks the contract: bits\.0 must be multiple of 8/);
    expect(() => jobs.create('j', { ...specOf('j'), sample: '../qembed.sqlite' })).toThrow(expect.objectContaining({ code: 'QEMBED_INVALID_JOB' }));
    expect(() => jobs.create('j', { ...specOf('j'), bundle: 'models/default' })).toThrow(/bundle must match pattern/);
    expect(() => jobs.create('j', specOf('other'))).toThrow(/fit job j reads fit-jobs\/j\/codes\.npy/);
    expect(jobs.list()).toEqual([]);
  });

  it('are listed newest first, by collection and by state, and counted by state', () => {
    jobs.create('a', specOf('a', 'docs'));
    jobs.create('b', specOf('b', 'news'));
    jobs.create('c', specOf('c', 'docs'));
    db.prepare("UPDATE fit_jobs SET created_at = CASE id WHEN 'a' THEN '2026-01-01T00:00:01Z' WHEN 'b' THEN '2026-01-01T00:00:02Z' ELSE '2026-01-01T00:00:03Z' END").run();
    claim('b');
    expect(jobs.list().map((j) => j.id)).toEqual(['c', 'b', 'a']);
    expect(jobs.list({ collection: 'docs' }).map((j) => j.id)).toEqual(['c', 'a']);
    expect(jobs.list({ state: 'running' }).map((j) => j.id)).toEqual(['b']);
    expect(jobs.list({ collection: 'docs', state: 'running' })).toEqual([]);
    expect(jobs.list({ limit: 1 }).map((j) => j.id)).toEqual(['c']);
    expect(jobs.countsByState()).toEqual({ queued: 2, running: 1, succeeded: 0, failed: 0, cancelled: 0 });
  });

  it('cancel a queued job at once and ask a running one to stop', () => {
    jobs.create('q', specOf('q'));
    jobs.create('r', specOf('r'));
    claim('r');
    expect(jobs.cancel('q')).toMatchObject({ state: 'cancelled', message: 'cancelled before it started' });
    expect(jobs.cancel('r')).toMatchObject({ state: 'running', cancel_requested: true });
    expect(jobs.cancel('nope')).toBeUndefined();
  });

  it('fail when their worker stops renewing the lease, on any read', () => {
    jobs.create('dead', specOf('dead'));
    jobs.create('alive', specOf('alive'));
    claim('dead', Date.now() - 1);
    claim('alive');
    expect(jobs.get('dead')).toMatchObject({ state: 'failed', message: expect.stringMatching(/lease expired/) });
    expect(jobs.get('alive')!.state).toBe('running');
    expect(jobs.reapExpired(Date.now() + 120_000)).toBe(1);
    expect(jobs.get('alive')!.state).toBe('failed');
  });

  it('give a succeeded job\'s result to the first taker only', () => {
    jobs.create('s', specOf('s'));
    expect(jobs.takeResult('s')).toBeUndefined();
    claim('s');
    expect(jobs.takeResult('s')).toBeUndefined();
    succeed('s');
    const taken = jobs.takeResult('s')!;
    expect(taken).toMatchObject({ id: 's', state: 'succeeded', result: { fingerprint: 'fedcba9876543210' } });
    expect(taken.imported_at).not.toBeNull();
    expect(jobs.takeResult('s')).toBeUndefined();
    expect(jobs.takeResult('nope')).toBeUndefined();
    expect(jobs.get('s')!.imported_at).toBe(taken.imported_at);
  });

  it('give a result once to two service processes sharing jobs.sqlite', () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'qembed-jobs-')), 'jobs.sqlite');
    const [one, two] = [0, 1].map(() => openDatabase({ file, exclusive: false, migrationsDir: jobsMigrations }));
    try {
      const [a, b] = [createFitJobs(one!), createFitJobs(two!)];
      a.create('s', specOf('s'));
      one!.prepare("UPDATE fit_jobs SET state = 'succeeded', result = '{}' WHERE id = 's'").run();
      expect([b.takeResult('s'), a.takeResult('s')].filter(Boolean)).toHaveLength(1);
    } finally {
      one!.close();
      two!.close();
    }
  });

  it('sit beside the training jobs in the same database without touching them', () => {
    const train = createTrainJobs(db);
    jobs.create('f', specOf('f'));
    expect(train.list()).toEqual([]);
    expect(train.countsByState().queued).toBe(0);
    expect(jobs.countsByState().queued).toBe(1);
  });
});
