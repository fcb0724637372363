/**
 * One thread of bench:transform-codes' parallel figure: builds its own coder (the kernel's memory
 * is per coder) for the transform it is given, then, at each message, recomputes the codes of its
 * share of the documents, read from and written to the shared buffers, and answers when done.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createQuantizer } from '../src/quantization/quantize.js';
import { int8Coder, linearTransform } from '../src/transform/transform.js';

export interface ThreadData {
  min: Float32Array;
  max: Float32Array;
  mean: Float32Array;
  matrix: Float32Array;
  bits: number;
  /** Int8 codes of every document and their codes out, SharedArrayBuffers. */
  codes: SharedArrayBuffer;
  out: SharedArrayBuffer;
  start: number;
  end: number;
}

const data = workerData as ThreadData;
const d = data.mean.length;
const bytes = data.bits / 8;
const coder = int8Coder(linearTransform('itq', '0000000000000000', data.mean, data.matrix, data.bits), createQuantizer({ min: data.min, max: data.max }));
const codes = new Int8Array(data.codes, data.start * d, (data.end - data.start) * d);
const out = new Uint8Array(data.out, data.start * bytes, (data.end - data.start) * bytes);
parentPort!.on('message', () => {
  coder.encode(codes, data.end - data.start, out);
  parentPort!.postMessage(coder.kernel);
});
