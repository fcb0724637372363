/**
 * Transform fits in SQLite (table fit_jobs of jobs.sqlite, beside the training jobs): the
 * service writes a sample of a collection's int8 codes to `fit-jobs/<id>/codes.npy` under the
 * data folder, then creates the job with that id; a worker claims it, fits the transform into
 * `fit-jobs/<id>/transform` and writes the result back; one service process takes the result
 * (`takeResult`) and imports the artifact. Leases, progress and cancellation work as for
 * training jobs (job-table.ts).
 */
import { Ajv } from 'ajv';
import { FIT_JOB_ID_PATTERN, type FitJobSpec, FitJobSpecSchema } from '../contracts/fit-job-spec.js';
import { errors } from '../errors.js';
import type { Db } from '../store/database.js';
import { type Job, type JobRow, jobTable, type JobState, toJob } from './job-table.js';

export { FIT_JOB_ID_PATTERN, FIT_METHODS, type FitJobSpec } from '../contracts/fit-job-spec.js';

interface FitJobRow extends JobRow {
  collection: string;
  /** When a service process took the result (takeResult); null until then. */
  imported_at: string | null;
}

export type FitJob = Job<FitJobSpec, FitJobRow>;

/** A fit job's files, relative to the data folder: what its spec's `sample` and `out` must be. */
export function fitJobFiles(id: string): { dir: string; sample: string; out: string } {
  const dir = `fit-jobs/${id}`;
  return { dir, sample: `${dir}/codes.npy`, out: `${dir}/transform` };
}

export interface FitJobs {
  readonly db: Db;
  /**
   * Queues a fit under `id` (the caller's: the sample is written to fitJobFiles(id).sample
   * first). Throws QEMBED_INVALID_JOB_ID for an id that cannot be a folder name and
   * QEMBED_INVALID_JOB for a spec that breaks the contract or names another job's files.
   */
  create(id: string, spec: FitJobSpec): FitJob;
  /** The job, marked failed first if its lease ran out (as every read does: see reapExpired). */
  get(id: string): FitJob | undefined;
  /** Jobs newest first, of one collection and/or state, after marking those whose lease ran out as failed. */
  list(options?: { collection?: string; state?: JobState; limit?: number }): FitJob[];
  /** Queued jobs become cancelled at once; running ones are asked to stop (the worker checks). */
  cancel(id: string): FitJob | undefined;
  /** Fails running jobs whose lease ran out; returns how many. */
  reapExpired(now?: number): number;
  countsByState(): Record<JobState, number>;
  /**
   * Marks a succeeded job's result as imported and returns the job, to the first caller only:
   * every later call (another replica, a restart) gets undefined, as do jobs that did not
   * succeed. The import itself is the caller's; a caller that fails it has used up the result.
   */
  takeResult(id: string): FitJob | undefined;
}

const checkSpec = new Ajv({ allErrors: false, strict: false }).compile<FitJobSpec>(FitJobSpecSchema);
const idPattern = new RegExp(FIT_JOB_ID_PATTERN);

function checkJob(id: string, spec: FitJobSpec): void {
  if (!idPattern.test(id)) throw errors.invalidJobId(`a fit job id is 1 to 64 letters, digits, '_' or '-' (it names a folder), not ${JSON.stringify(id)}`);
  // The contract the worker checks too (contracts/fit-job-spec.schema.json): what passes here runs there.
  if (!checkSpec(spec)) {
    const e = checkSpec.errors![0]!;
    throw errors.invalidJob(`the fit job spec breaks the contract: ${e.instancePath.slice(1).replaceAll('/', '.') || 'spec'} ${e.message ?? 'is invalid'}`);
  }
  const files = fitJobFiles(id);
  if (spec.sample !== files.sample || spec.out !== files.out) {
    throw errors.invalidJob(`fit job ${id} reads ${files.sample} and writes ${files.out}, not ${spec.sample} and ${spec.out}`);
  }
}

export function createFitJobs(db: Db): FitJobs {
  const table = jobTable<FitJobRow>(db, 'fit_jobs');
  const insert = db.prepare(`INSERT INTO fit_jobs (id, state, collection, spec, created_at) VALUES (?, 'queued', ?, ?, ?)`);
  const take = db.prepare<[string, string], FitJobRow>(`UPDATE fit_jobs SET imported_at = ? WHERE id = ? AND state = 'succeeded' AND imported_at IS NULL RETURNING *`);
  const job = (r: FitJobRow | undefined) => r && toJob<FitJobSpec, FitJobRow>(r);
  return {
    db,
    create(id, spec) {
      checkJob(id, spec);
      insert.run(id, spec.collection, JSON.stringify(spec), new Date().toISOString());
      return job(table.byId(id))!;
    },
    get(id) {
      table.reapExpired();
      return job(table.byId(id));
    },
    list({ collection, state, limit = 100 } = {}) {
      table.reapExpired();
      return table.list({ collection, state }, limit).map((r) => toJob<FitJobSpec, FitJobRow>(r));
    },
    cancel: (id) => job(table.cancel(id)),
    reapExpired: table.reapExpired,
    countsByState: table.countsByState,
    takeResult: (id) => job(take.get(new Date().toISOString(), id)),
  };
}
