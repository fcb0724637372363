/** What the console computes from a job's progress. */
import type { Job } from './types.js';

/** Seconds left at the rate since the job started, or undefined before there is a rate. */
export function eta(job: Job, now = Date.now()): number | undefined {
  if (job.state !== 'running' || !job.started_at || job.progress <= 0 || job.progress >= 1) return undefined;
  const elapsed = (now - new Date(job.started_at).getTime()) / 1000;
  return elapsed > 0 ? (elapsed * (1 - job.progress)) / job.progress : undefined;
}
