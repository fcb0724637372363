/** A job's progress: bar, step, loss and the time left at the rate so far. */
import type { ComponentChildren } from 'preact';
import { eta } from '../jobs';
import type { Job } from '../types';
import { duration } from './format';

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

/** Jobs (training jobs or fits) with their progress, each with a cancel button while it can be cancelled. */
export function JobList(props: { jobs: Job[]; describe?: (job: Job) => ComponentChildren; cancelLabel: string; onCancel: (id: string) => void; testId?: string }) {
  return (
    <ul class="jobs" data-testid={props.testId}>
      {props.jobs.map((j) => (
        <li key={j.id}>
          <code>{j.id}</code> {props.describe?.(j)}
          <JobProgress job={j} />
          {(j.state === 'queued' || j.state === 'running') && !j.cancel_requested && (
            <button type="button" onClick={() => props.onCancel(j.id)}>
              {props.cancelLabel}
            </button>
          )}
        </li>
      ))}
    </ul>
  );
}
