/**
 * Training jobs in SQLite: the API creates them, a worker process claims one (exactly one
 * worker per job: the claim is a single conditional UPDATE), runs it and writes progress back.
 * A running job holds a lease the worker renews; a job whose lease expired (its worker died)
 * is marked failed by `reapExpired`, so nothing stays "running" forever.
 */
import { randomUUID } from 'node:crypto';
import type { Db } from '../store/database.js';
import type { TrainJobSpec } from './job-spec.js';
import { type Job, jobTable, type JobState, toJob } from './job-table.js';

export { JOB_STATES, type JobState } from './job-table.js';

export type TrainJob = Job<TrainJobSpec>;

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
  const table = jobTable(db, 'train_jobs');
  const insert = db.prepare(`INSERT INTO train_jobs (id, state, spec, created_at, total_steps) VALUES (?, 'queued', ?, ?, ?)`);
  const job = (r: Parameters<typeof toJob>[0] | undefined) => r && toJob<TrainJobSpec>(r);
  return {
    db,
    create(spec) {
      const id = randomUUID();
      insert.run(id, JSON.stringify(spec), new Date().toISOString(), spec.steps);
      return job(table.byId(id))!;
    },
    get(id) {
      table.reapExpired();
      return job(table.byId(id));
    },
    list({ state, limit = 100 } = {}) {
      table.reapExpired();
      return table.list({ state }, limit).map((r) => toJob<TrainJobSpec>(r));
    },
    cancel: (id) => job(table.cancel(id)),
    reapExpired: table.reapExpired,
    countsByState: table.countsByState,
  };
}
