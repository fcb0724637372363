/**
 * Training jobs in SQLite: the API creates them, a worker process claims one (exactly one
 * worker per job: the claim is a single conditional UPDATE), runs it and writes progress back.
 * A running job holds a lease the worker renews; a job whose lease expired (its worker died)
 * is marked failed by `reapExpired`, so nothing stays "running" forever.
 */
import { randomUUID } from 'node:crypto';
import type { Db } from '../store/database.js';
import type { TrainJobSpec } from './job-spec.js';

export const JOB_STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type JobState = (typeof JOB_STATES)[number];

export interface TrainJob {
  id: string;
  state: JobState;
  spec: TrainJobSpec;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  worker: string | null;
  lease_expires_at: string | null;
  progress: number;
  step: number | null;
  total_steps: number | null;
  loss: number | null;
  message: string | null;
  cancel_requested: boolean;
  result: Record<string, unknown> | null;
}

interface Row {
  id: string;
  state: JobState;
  spec: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  worker: string | null;
  lease_expires_at: number | null;
  progress: number;
  step: number | null;
  total_steps: number | null;
  loss: number | null;
  message: string | null;
  cancel_requested: number;
  result: string | null;
}

const toJob = (r: Row): TrainJob => ({
  ...r,
  spec: JSON.parse(r.spec) as TrainJobSpec,
  lease_expires_at: r.lease_expires_at === null ? null : new Date(r.lease_expires_at).toISOString(),
  cancel_requested: r.cancel_requested === 1,
  result: r.result === null ? null : (JSON.parse(r.result) as Record<string, unknown>),
});

export interface TrainJobs {
  readonly db: Db;
  create(spec: TrainJobSpec): TrainJob;
  /** The job, marked failed first if its lease ran out (as every read does: see reapExpired). */
  get(id: string): TrainJob | undefined;
  /** Jobs newest first, after marking those whose lease ran out as failed. */
  list(options?: { state?: JobState; limit?: number }): TrainJob[];
  /** Queued jobs become cancelled at once; running ones are asked to stop (the worker checks). */
  cancel(id: string): TrainJob | undefined;
  /** Fails running jobs whose lease ran out; returns how many. */
  reapExpired(now?: number): number;
  countsByState(): Record<JobState, number>;
}

export function createTrainJobs(db: Db): TrainJobs {
  const insert = db.prepare(`INSERT INTO train_jobs (id, state, spec, created_at, total_steps) VALUES (?, 'queued', ?, ?, ?)`);
  const byId = db.prepare<[string], Row>('SELECT * FROM train_jobs WHERE id = ?');
  const reap = db.prepare(
    `UPDATE train_jobs SET state = 'failed', finished_at = ?, message = 'the worker stopped reporting: lease expired at ' || ?
       || ' (it probably died); submit the job again' WHERE state = 'running' AND lease_expires_at < ?`,
  );
  const reapExpired = (now = Date.now()) => reap.run(new Date(now).toISOString(), new Date(now).toISOString(), now).changes;
  return {
    db,
    create(spec) {
      const id = randomUUID();
      insert.run(id, JSON.stringify(spec), new Date().toISOString(), spec.steps);
      return toJob(byId.get(id)!);
    },
    get(id) {
      reapExpired();
      const r = byId.get(id);
      return r && toJob(r);
    },
    list({ state, limit = 100 } = {}) {
      reapExpired();
      const rows = state
        ? db.prepare<[string, number], Row>('SELECT * FROM train_jobs WHERE state = ? ORDER BY created_at DESC LIMIT ?').all(state, limit)
        : db.prepare<[number], Row>('SELECT * FROM train_jobs ORDER BY created_at DESC LIMIT ?').all(limit);
      return rows.map(toJob);
    },
    cancel(id) {
      const now = new Date().toISOString();
      db.prepare(`UPDATE train_jobs SET state = 'cancelled', finished_at = ?, message = 'cancelled before it started' WHERE id = ? AND state = 'queued'`).run(now, id);
      db.prepare(`UPDATE train_jobs SET cancel_requested = 1 WHERE id = ? AND state = 'running'`).run(id);
      const r = byId.get(id);
      return r && toJob(r);
    },
    reapExpired,
    countsByState() {
      const counts = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>;
      for (const r of db.prepare<[], { state: JobState; n: number }>('SELECT state, count(*) AS n FROM train_jobs GROUP BY state').all()) counts[r.state] = r.n;
      return counts;
    },
  };
}
