/**
 * What training jobs and transform fits share in jobs.sqlite: two tables with the same lease,
 * progress and cancel columns and states (migrations/jobs/), read and changed by the same
 * statements here, so the two queues cannot drift apart in how a job is reaped or cancelled.
 */
import type { Db } from '../store/database.js';

export const JOB_STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type JobState = (typeof JOB_STATES)[number];

/** The tables of jobs.sqlite that hold jobs (named in SQL text: only these two). */
export type JobTableName = 'train_jobs' | 'fit_jobs';

/** The columns every job row has, as SQLite returns them. */
export interface JobRow {
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

/** A job as the API answers it: the spec and result parsed, the lease as a time, cancel as a boolean. */
export type Job<Spec, R extends JobRow = JobRow> = Omit<R, 'spec' | 'lease_expires_at' | 'cancel_requested' | 'result'> & {
  spec: Spec;
  lease_expires_at: string | null;
  cancel_requested: boolean;
  result: Record<string, unknown> | null;
};

export function toJob<Spec, R extends JobRow = JobRow>(r: R): Job<Spec, R> {
  return {
    ...r,
    spec: JSON.parse(r.spec) as Spec,
    lease_expires_at: r.lease_expires_at === null ? null : new Date(r.lease_expires_at).toISOString(),
    cancel_requested: r.cancel_requested === 1,
    result: r.result === null ? null : (JSON.parse(r.result) as Record<string, unknown>),
  };
}

/** The statements both queues run, over one table. */
export interface JobTable<R extends JobRow> {
  byId(id: string): R | undefined;
  /** Rows newest first whose columns equal the given values (undefined ones are not filtered on). */
  list(where: Partial<Record<'state' | 'collection', string>>, limit: number): R[];
  /** Queued jobs become cancelled at once; running ones are asked to stop (the worker checks). */
  cancel(id: string): R | undefined;
  /** Fails running jobs whose lease ran out; returns how many. */
  reapExpired(now?: number): number;
  countsByState(): Record<JobState, number>;
}

export function jobTable<R extends JobRow>(db: Db, table: JobTableName): JobTable<R> {
  const byId = db.prepare<[string], R>(`SELECT * FROM ${table} WHERE id = ?`);
  const reap = db.prepare(
    `UPDATE ${table} SET state = 'failed', finished_at = ?, message = 'the worker stopped reporting: lease expired at ' || ?
       || ' (it probably died); submit the job again' WHERE state = 'running' AND lease_expires_at < ?`,
  );
  const cancelQueued = db.prepare(`UPDATE ${table} SET state = 'cancelled', finished_at = ?, message = 'cancelled before it started' WHERE id = ? AND state = 'queued'`);
  const cancelRunning = db.prepare(`UPDATE ${table} SET cancel_requested = 1 WHERE id = ? AND state = 'running'`);
  const counts = db.prepare<[], { state: JobState; n: number }>(`SELECT state, count(*) AS n FROM ${table} GROUP BY state`);
  return {
    byId: (id) => byId.get(id),
    list(where, limit) {
      const columns = (Object.keys(where) as (keyof typeof where)[]).filter((c) => where[c] !== undefined);
      const filter = columns.length === 0 ? '' : `WHERE ${columns.map((c) => `${c} = ?`).join(' AND ')}`;
      return db.prepare<unknown[], R>(`SELECT * FROM ${table} ${filter} ORDER BY created_at DESC LIMIT ?`).all(...columns.map((c) => where[c]), limit);
    },
    cancel(id) {
      cancelQueued.run(new Date().toISOString(), id);
      cancelRunning.run(id);
      return byId.get(id);
    },
    reapExpired: (now = Date.now()) => reap.run(new Date(now).toISOString(), new Date(now).toISOString(), now).changes,
    countsByState() {
      const byState = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>;
      for (const r of counts.all()) byState[r.state] = r.n;
      return byState;
    },
  };
}
