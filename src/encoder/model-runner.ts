/**
 * The main-thread side of the model thread: starts it, waits until the graph is checked,
 * and turns run requests into promises. One request runs at a time; the batcher decides
 * what goes into each.
 */
import { Worker } from 'node:worker_threads';
import type { ExecutionProvider, InitReply, ModelInit, RunReply, RunRequest } from './model-protocol.js';

export interface ModelRunner {
  readonly provider: ExecutionProvider;
  readonly warning: string | undefined;
  /** False once the thread died; the service then reports itself unhealthy. */
  alive(): boolean;
  run(request: Omit<RunRequest, 'type' | 'id'>): Promise<Float32Array>;
  close(): Promise<void>;
}

export async function startModelRunner(init: ModelInit): Promise<ModelRunner> {
  const worker = new Worker(new URL('./model-thread.mjs', import.meta.url), { workerData: init });
  const pending = new Map<number, { resolve: (v: Float32Array) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let dead: Error | null = null;
  let closed: Promise<void> | null = null;

  const ready = await new Promise<Extract<InitReply, { type: 'ready' }>>((resolve, reject) => {
    const onError = (e: Error) => reject(new Error(`model thread failed to start: ${e.message}`));
    worker.once('error', onError);
    worker.once('message', (m: InitReply) => {
      worker.off('error', onError);
      if (m.type === 'ready') resolve(m);
      else reject(new Error(m.message));
    });
  }).catch(async (e: Error) => {
    await worker.terminate();
    throw e;
  });

  const failAll = (e: Error) => {
    dead = e;
    for (const p of pending.values()) p.reject(e);
    pending.clear();
  };
  worker.on('message', (m: RunReply) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.type === 'result') p.resolve(m.embeddings);
    else p.reject(new Error(`inference failed: ${m.message}`));
  });
  worker.on('error', (e) => failAll(new Error(`model thread crashed: ${e.message}`)));
  worker.on('exit', (code) => failAll(new Error(`model thread exited (code ${code})`)));

  return {
    provider: ready.provider,
    warning: ready.warning,
    alive: () => dead === null,
    run(request) {
      if (dead) return Promise.reject(dead);
      const id = nextId++;
      const message: RunRequest = { type: 'run', id, ...request };
      const transfer = [request.inputIds.buffer, request.attentionMask.buffer];
      if (request.tokenTypeIds) transfer.push(request.tokenTypeIds.buffer);
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        worker.postMessage(message, transfer as ArrayBuffer[]);
      });
    },
    close() {
      closed ??= (async () => {
        if (dead) return;
        // The thread finishes the run in flight, releases the session, then exits. Terminating it
        // during a native inference is what aborted the process: only a thread stuck far past
        // any batch's duration is terminated.
        worker.postMessage({ type: 'close' });
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => void worker.terminate().then(() => resolve()), 60_000);
          timer.unref();
          worker.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
        });
      })();
      return closed;
    },
  };
}
