// @ts-check
/**
 * Runs in a worker thread: owns the onnxruntime session so that inference (synchronous in
 * onnxruntime-node) never blocks the HTTP event loop. Checks the graph against the manifest
 * before reporting ready.
 *
 * Plain JavaScript (type-checked through JSDoc) because worker threads do not inherit the
 * TypeScript loader that tests and `npm run dev` use; the same file runs from src/ and dist/.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { diagnoseCuda } from './cuda-diagnosis.mjs';

/** @typedef {import('./model-protocol.js').ModelInit} ModelInit */
/** @typedef {import('./model-protocol.js').InitReply} InitReply */
/** @typedef {import('./model-protocol.js').RunReply} RunReply */
/** @typedef {import('./model-protocol.js').RunRequest} RunRequest */

const init = /** @type {ModelInit} */ (workerData);
const port = /** @type {import('node:worker_threads').MessagePort} */ (parentPort);

/** @returns {Promise<{ session: ort.InferenceSession, provider: 'cpu' | 'cuda', warning?: string }>} */
async function createSession() {
  /** @type {ort.InferenceSession.SessionOptions} */
  const base = {
    // Bundles arrive fused (the worker's fusion step). On the CPU, onnxruntime's extended level
    // would add only its SkipLayerNormalization fusion, whose kernel sums each row serially and
    // ran 6 times slower than the Add + LayerNormalization it replaces (docs/encoder-quantization.md);
    // CUDA's kernels for it are fast.
    graphOptimizationLevel: init.provider === 'cuda' ? 'all' : 'basic',
    ...(init.intraOpThreads > 0 ? { intraOpNumThreads: init.intraOpThreads } : {}),
  };
  if (init.provider === 'cuda') {
    try {
      const session = await ort.InferenceSession.create(init.modelPath, {
        ...base,
        executionProviders: [{ name: 'cuda', deviceId: init.cudaDeviceId }],
      });
      return { session, provider: 'cuda' };
    } catch (e) {
      const why = `QEMBED_EXECUTION_PROVIDER=cuda: ${diagnoseCuda(String(/** @type {Error} */ (e).message).split('\n')[0] ?? '')}`;
      if (!init.cudaFallback) throw new Error(`${why}, or set QEMBED_CUDA_FALLBACK=true to run on the CPU`);
      const session = await ort.InferenceSession.create(init.modelPath, { ...base, graphOptimizationLevel: 'basic', executionProviders: ['cpu'] });
      return { session, provider: 'cpu', warning: `${why}; falling back to the CPU` };
    }
  }
  const session = await ort.InferenceSession.create(init.modelPath, { ...base, executionProviders: ['cpu'] });
  return { session, provider: 'cpu' };
}

/** @param {ort.InferenceSession} session */
function checkGraph(session) {
  const actual = [...session.inputNames].sort();
  const expected = [...init.expectedInputs].sort();
  if (actual.join(',') !== expected.join(',')) {
    throw new Error(`model.onnx takes inputs [${actual.join(', ')}] but the manifest declares [${expected.join(', ')}]`);
  }
  if (!session.outputNames.includes(init.output)) {
    throw new Error(`model.onnx has no output "${init.output}" (outputs: ${session.outputNames.join(', ')})`);
  }
  const meta = session.outputMetadata.find((m) => m.name === init.output);
  if (meta && meta.isTensor) {
    const last = meta.shape[meta.shape.length - 1];
    if (meta.shape.length !== 2 || (typeof last === 'number' && last !== init.dimension)) {
      throw new Error(`model.onnx output "${init.output}" has shape [${meta.shape.join(', ')}], expected [batch, ${init.dimension}]`);
    }
    if (meta.type !== 'float32') throw new Error(`model.onnx output "${init.output}" is ${meta.type}, expected float32`);
  }
}

async function main() {
  /** @type {ort.InferenceSession} */
  let session;
  try {
    const created = await createSession();
    session = created.session;
    checkGraph(session);
    /** @type {InitReply} */
    const ready = { type: 'ready', provider: created.provider, inputs: [...session.inputNames], ...(created.warning ? { warning: created.warning } : {}) };
    port.postMessage(ready);
  } catch (e) {
    /** @type {InitReply} */
    const failed = { type: 'failed', message: /** @type {Error} */ (e).message };
    port.postMessage(failed);
    return;
  }

  const wantsTypes = session.inputNames.includes('token_type_ids');
  // One run at a time, and the session is released only once the run in flight has finished:
  // releasing it under a running inference aborted the whole process.
  /** @type {Promise<void>} */
  let inflight = Promise.resolve();
  let closing = false;
  port.on('message', (/** @type {RunRequest | { type: 'close' }} */ req) => {
    if (req.type === 'close') {
      closing = true;
      inflight = inflight.then(async () => {
        await session.release();
        port.close();
      });
      return;
    }
    if (closing) {
      /** @type {RunReply} */
      const reply = { type: 'error', id: req.id, message: 'the model is closing' };
      port.postMessage(reply);
      return;
    }
    inflight = inflight.then(() => run(req));
  });

  /** @param {RunRequest} req */
  async function run(req) {
    try {
      const dims = [req.batch, req.sequence];
      /** @type {Record<string, ort.Tensor>} */
      const feeds = {
        input_ids: new ort.Tensor('int64', req.inputIds, dims),
        attention_mask: new ort.Tensor('int64', req.attentionMask, dims),
      };
      if (wantsTypes) feeds.token_type_ids = new ort.Tensor('int64', req.tokenTypeIds ?? new BigInt64Array(req.batch * req.sequence), dims);
      const out = await session.run(feeds, [init.output]);
      const tensor = out[init.output];
      if (!tensor || tensor.dims.length !== 2 || tensor.dims[0] !== req.batch || tensor.dims[1] !== init.dimension) {
        throw new Error(`model returned shape [${tensor?.dims.join(', ')}], expected [${req.batch}, ${init.dimension}]`);
      }
      // Copy into a buffer of our own so it can be transferred without touching onnxruntime's memory.
      const embeddings = new Float32Array(/** @type {Float32Array} */ (tensor.data));
      /** @type {RunReply} */
      const reply = { type: 'result', id: req.id, embeddings };
      port.postMessage(reply, [embeddings.buffer]);
    } catch (e) {
      /** @type {RunReply} */
      const reply = { type: 'error', id: req.id, message: /** @type {Error} */ (e).message };
      port.postMessage(reply);
    }
  }
}

void main();
