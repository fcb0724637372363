/**
 * What the background jobs of search (a re-encoding, a transform switch) share: waiting before
 * the next try of a failed step, waiting at all in a way stop() can cut short, and stopping them.
 */

/** Waits between retries of a failed step: doubling from the first, capped at the second. */
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 30_000;

/** A background job's state that a wait reads and writes. */
export interface Wakeable {
  status: { retries: number; lastError: string | null };
  /** Ends the current wait at once (stop() calls it). */
  wake: () => void;
}

/** Waits `ms`; `job.wake()` ends the wait early. */
export function sleep(job: Pick<Wakeable, 'wake'>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    job.wake = () => {
      clearTimeout(timer);
      resolve();
    };
  });
}

/** Records failure number `failures` (from 1) and waits before the next try. */
export function retryWait(job: Wakeable, e: unknown, failures: number): Promise<void> {
  job.status.retries++;
  job.status.lastError = (e as Error).message;
  return sleep(job, Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (failures - 1)));
}

/** A background job that runs until it ends or is stopped. */
export interface Stoppable {
  /** Set by stop: the job ends at its next step. */
  stopped: boolean;
  wake: () => void;
  running: Promise<unknown>;
}

/** Stops the jobs (each ends at its next step, a wait cut short) and waits for them to end. */
export async function stopAll(jobs: Iterable<Stoppable>): Promise<void> {
  const running = [...jobs];
  for (const job of running) {
    job.stopped = true;
    job.wake();
  }
  await Promise.allSettled(running.map((job) => job.running));
}
