// @ts-check
/**
 * A scan thread of the first stage (scan-pool.ts): it sleeps on its control words until the
 * searching thread posts a job, scans its part of an index's codes in the shared WebAssembly
 * memory with its own instance of the kernel, writes its best pairs to its own area of that
 * memory, and wakes the searching thread. Indexes arrive as messages (the compiled kernel, the
 * shared memory and tombstones), read synchronously before each job.
 *
 * Plain JavaScript (type-checked through JSDoc) because worker threads do not inherit the
 * TypeScript loader that tests and `npm run dev` use; the same file runs from src/ and dist/.
 */
import { receiveMessageOnPort, workerData } from 'node:worker_threads';
import { scanSlots } from './scan-range.mjs';
import { CONTROL, OP } from './scan-protocol.mjs';

/** @typedef {import('./scan-protocol.mjs').ThreadMessage} ThreadMessage */
/** @typedef {{ scan: import('./scan-range.mjs').ScanFunction, scanAsymmetric: import('./scan-range.mjs').ScanFunction, written: () => number, memory: WebAssembly.Memory, tomb: Uint8Array }} Attached */

const { control, base, port } = /** @type {{ control: Int32Array, base: number, port: import('node:worker_threads').MessagePort }} */ (workerData);
/** @type {Map<number, Attached>} */
const indexes = new Map();

/** @param {ThreadMessage} message */
function receive(message) {
  if (message.type === 'detach') {
    indexes.delete(message.id);
    return;
  }
  const instance = new WebAssembly.Instance(message.module, { env: { memory: message.memory } });
  const e = /** @type {{ scan: import('./scan-range.mjs').ScanFunction, scanAsymmetric: import('./scan-range.mjs').ScanFunction, written: WebAssembly.Global }} */ (
    /** @type {unknown} */ (instance.exports)
  );
  indexes.set(message.id, { scan: e.scan, scanAsymmetric: e.scanAsymmetric, written: () => /** @type {number} */ (e.written.value), memory: message.memory, tomb: message.tomb });
}

/** @param {(i: number) => number} at */
function run(at) {
  const index = indexes.get(at(CONTROL.index));
  if (!index) throw new Error(`index ${at(CONTROL.index)} was never attached`);
  const outPtr = at(CONTROL.outPtr);
  const cap = at(CONTROL.cap);
  return scanSlots(at(CONTROL.asymmetric) ? index.scanAsymmetric : index.scan, index.written, {
    start: at(CONTROL.start),
    end: at(CONTROL.end),
    queryPtr: at(CONTROL.queryPtr),
    outPtr,
    pairs: new Uint32Array(index.memory.buffer, outPtr, cap * 2),
    cap,
    keep: at(CONTROL.keep),
    maxDistance: at(CONTROL.maxDistance),
    tomb: at(CONTROL.dead) ? index.tomb : null,
  });
}

let seen = 0;
for (;;) {
  Atomics.wait(control, base + CONTROL.job, seen);
  const job = Atomics.load(control, base + CONTROL.job);
  if (job === seen) continue;
  seen = job;
  for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) receive(m.message);
  if (Atomics.load(control, base + CONTROL.op) === OP.stop) break;
  try {
    control[base + CONTROL.count] = run((i) => /** @type {number} */ (control[base + i]));
    control[base + CONTROL.failed] = 0;
  } catch {
    control[base + CONTROL.failed] = 1;
  }
  Atomics.store(control, base + CONTROL.done, job);
  Atomics.notify(control, base + CONTROL.done);
}
port.close();
