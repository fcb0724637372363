/**
 * The scan threads of the first stage: a search over a large index is split into contiguous
 * parts, one per thread; the searching thread scans the first part itself while the others scan
 * theirs in the same shared WebAssembly memory (no code is copied), each keeping its best k
 * pairs in its own area (scan-range.mjs). The caller merges them: the result is the same as one
 * thread's, since every part's top k by (distance, slot) holds its share of the overall top k.
 *
 * Search stays synchronous (the store's contract, store/store.ts): the searching thread posts the
 * jobs through shared control words and blocks on `Atomics.wait` until every thread is done,
 * which costs a few microseconds against milliseconds of scanning; threads sleep on their own
 * control words between searches. They start at the first parallel search and never keep the
 * process alive (unref). A thread that fails or does not answer within `SCAN_TIMEOUT_MS` is
 * reported as such; the caller scans its part itself and the pool stops splitting.
 */
import { availableParallelism } from 'node:os';
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import { CONTROL, OP, type ThreadMessage } from './scan-protocol.mjs';

/** An index as the threads see it. `version` changes whenever `memory` or `tomb` is replaced. */
export interface ScanTarget {
  id: number;
  version: number;
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  /** Tombstone bits by slot, in a SharedArrayBuffer. */
  tomb: Uint8Array;
}

/** What every part of one search shares (addresses in the index's memory). */
export interface ScanCommon {
  queryPtr: number;
  cap: number;
  keep: number;
  maxDistance: number;
  asymmetric: boolean;
  /** Whether any slot is dead (the threads then read the tombstones). */
  dead: boolean;
}

/** Slots [start, end), best pairs written at `outPtr` (room for `cap` pairs). */
export interface ScanPart {
  start: number;
  end: number;
  outPtr: number;
}

export interface ScanPool {
  /** Threads a scan is split over, the searching one included; 1 when it does not split. */
  readonly threads: number;
  /**
   * Scans `parts[1..]` on the scan threads while `own()` scans `parts[0]` here; returns the
   * pairs each part kept, or undefined for a part whose thread failed (scan it here).
   */
  scan(target: ScanTarget, common: ScanCommon, parts: readonly ScanPart[], own: () => number): (number | undefined)[];
  /** Forgets an index (its memory is released by the threads too). */
  detach(id: number): void;
  close(): Promise<void>;
}

/** Longest wait for a scan thread, far above any scan (a 10M-document scan takes about 20 ms). */
const SCAN_TIMEOUT_MS = 10_000;

interface ScanThread {
  worker: Worker;
  port: MessagePort;
  base: number;
  /** Index id → version of what the thread holds. */
  attached: Map<number, number>;
}

/** A pool splitting scans over `threads` threads (the caller's included). */
export function createScanPool(threads: number): ScanPool {
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`scan threads must be a positive integer, got ${threads}`);
  const control = new Int32Array(new SharedArrayBuffer(Math.max(1, threads - 1) * CONTROL.words * 4));
  let pool: ScanThread[] | undefined;
  let broken = false;
  let jobs = 0;

  function start(): ScanThread[] {
    return Array.from({ length: threads - 1 }, (_, t) => {
      const { port1, port2 } = new MessageChannel();
      const base = t * CONTROL.words;
      const worker = new Worker(new URL('./scan-thread.mjs', import.meta.url), { workerData: { control, base, port: port2 }, transferList: [port2] });
      worker.unref();
      worker.on('error', () => {
        broken = true;
      });
      return { worker, port: port1, base, attached: new Map() };
    });
  }

  function post(thread: ScanThread, message: ThreadMessage): void {
    thread.port.postMessage(message);
  }

  /** Waits for a thread's job; false when it failed or timed out. */
  function finished(thread: ScanThread, job: number): boolean {
    const deadline = performance.now() + SCAN_TIMEOUT_MS;
    for (;;) {
      const done = Atomics.load(control, thread.base + CONTROL.done);
      if (done === job) return control[thread.base + CONTROL.failed] === 0;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      Atomics.wait(control, thread.base + CONTROL.done, done, left);
    }
  }

  return {
    get threads() {
      return broken ? 1 : threads;
    },
    scan(target, common, parts, own) {
      if (parts.length > threads || (parts.length > 1 && broken)) throw new Error(`${parts.length} parts for ${broken ? 1 : threads} threads`);
      pool ??= start();
      const job = ++jobs;
      const posted = parts.slice(1).map((part, t) => {
        const thread = pool![t]!;
        if (thread.attached.get(target.id) !== target.version) {
          post(thread, { type: 'attach', id: target.id, module: target.module, memory: target.memory, tomb: target.tomb });
          thread.attached.set(target.id, target.version);
        }
        const at = (i: number, v: number) => (control[thread.base + i] = v);
        at(CONTROL.op, OP.scan);
        at(CONTROL.index, target.id);
        at(CONTROL.start, part.start);
        at(CONTROL.end, part.end);
        at(CONTROL.queryPtr, common.queryPtr);
        at(CONTROL.outPtr, part.outPtr);
        at(CONTROL.cap, common.cap);
        at(CONTROL.keep, common.keep);
        at(CONTROL.maxDistance, common.maxDistance);
        at(CONTROL.asymmetric, common.asymmetric ? 1 : 0);
        at(CONTROL.dead, common.dead ? 1 : 0);
        Atomics.store(control, thread.base + CONTROL.job, job);
        Atomics.notify(control, thread.base + CONTROL.job);
        return thread;
      });
      const counts: (number | undefined)[] = [own()];
      for (const thread of posted) {
        if (finished(thread, job)) counts.push(control[thread.base + CONTROL.count]!);
        else {
          broken = true;
          counts.push(undefined);
        }
      }
      return counts;
    },
    detach(id) {
      for (const thread of pool ?? []) {
        if (thread.attached.delete(id)) post(thread, { type: 'detach', id });
      }
    },
    async close() {
      const threadsNow = pool ?? [];
      pool = undefined;
      const job = ++jobs;
      await Promise.all(
        threadsNow.map((thread) => {
          const exited = new Promise<void>((resolve) => thread.worker.once('exit', () => resolve()));
          control[thread.base + CONTROL.op] = OP.stop;
          Atomics.store(control, thread.base + CONTROL.job, job);
          Atomics.notify(control, thread.base + CONTROL.job);
          return exited;
        }),
      );
    },
  };
}

let defaultThreads = availableParallelism();
let defaultPool: ScanPool | undefined;

/** The process's pool, of QEMBED_SEARCH_THREADS threads (setScanThreads), one per CPU by default. */
export function scanPool(): ScanPool {
  defaultPool ??= createScanPool(defaultThreads);
  return defaultPool;
}

/** Sets the threads of the process's pool (0: one per CPU available to the process). */
export function setScanThreads(threads: number): void {
  const want = threads === 0 ? availableParallelism() : threads;
  if (want === defaultThreads) return;
  defaultThreads = want;
  void defaultPool?.close();
  defaultPool = undefined;
}
