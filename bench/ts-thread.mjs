// The entry of a benchmark's TypeScript worker thread: a thread does not inherit the tsx loader
// that runs the benchmark, so it registers it, then imports the module named in workerData.entry.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
