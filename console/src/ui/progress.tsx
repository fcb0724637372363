/** A job's progress: bar, step, loss and the time left at the rate so far. */
import type { Job } from '../types';
import { duration } from './format';

/** Seconds left at the rate since the job started, or undefined before there is a rate. */
export function eta(job: Job, now = Date.now()): number | undefined {
  if (job.state !== 'running' || !job.started_at || job.progress <= 0 || job.progress >= 1) return undefined;
  const elapsed = (now - new Date(job.started_at).getTime()) / 1000;
  return elapsed > 0 ? (elapsed * (1 - job.progress)) / job.progress : undefined;
}

export function JobProgress({ job }: { job: Job }) {
  const left = eta(job);
  const label = `${job.state}${job.step !== null && job.total_steps ? `, step ${job.step} of ${job.total_steps}` : ''}`;
  return (
    <div class="job-progress">
      <progress max={1} value={job.progress} aria-label={`progress of job ${job.id}: ${Math.round(job.progress * 100)}%`} />
      <span class="job-figures" data-progress={job.progress.toFixed(4)}>
        {Math.round(job.progress * 100)}% · {label}
        {job.loss !== null && ` · loss ${job.loss.toFixed(4)}`}
        {left !== undefined && ` · about ${duration(left)} left`}
      </span>
      {job.message && <div class="muted">{job.message}</div>}
    </div>
  );
}
