// @ts-check
/**
 * What the searching thread and a scan thread share (scan-pool.ts, scan-thread.mjs): each
 * thread has a block of `CONTROL.words` Int32 words in one SharedArrayBuffer, with the job's
 * parameters and two sequence numbers: `job` (bumped by the searcher to post a job, which the
 * thread waits on) and `done` (set to the job's number by the thread when it finished, which the
 * searcher waits on). Indexes travel as messages on the thread's port, read before each job.
 */

/** Word offsets in a thread's block (16 words: one 64-byte cache line). */
export const CONTROL = Object.freeze({
  job: 0,
  done: 1,
  op: 2,
  index: 3,
  start: 4,
  end: 5,
  queryPtr: 6,
  outPtr: 7,
  cap: 8,
  keep: 9,
  maxDistance: 10,
  asymmetric: 11,
  dead: 12,
  count: 13,
  failed: 14,
  words: 16,
});

export const OP = Object.freeze({ scan: 0, stop: 1 });

/**
 * @typedef {{ type: 'attach', id: number, module: WebAssembly.Module, memory: WebAssembly.Memory, tomb: Uint8Array }
 *   | { type: 'detach', id: number }} ThreadMessage
 */
