/**
 * The encoder: prompt → tokenizer → batching queue → model thread → float32 embeddings.
 * Knows nothing of HTTP; errors are QembedErrors the HTTP layer maps to responses.
 */
import { availableParallelism } from 'node:os';
import { errors } from '../errors.js';
import { createQuantizer, type Quantizer } from '../quantization/quantize.js';
import { type BatchEvent, createBatcher, type BatchStats } from './batcher.js';
import type { Bundle, InputType } from './bundle.js';
import type { ExecutionProvider } from './model-protocol.js';
import { startModelRunner } from './model-runner.js';
import { createTokenizer, type TokenizedText } from './tokenizer.js';

export interface EncoderOptions {
  executionProvider: ExecutionProvider;
  cudaFallback: boolean;
  cudaDeviceId: number;
  intraOpThreads: number;
  maxBatchTokens: number;
  maxBatchSize: number;
  queueSize: number;
}

export interface EmbedOptions {
  inputType: InputType;
  /** Cut texts longer than the model's max_tokens (true) or refuse them with 413 (false). */
  truncate: boolean;
  /**
   * Internal work (re-encoding a collection): never refused by the queue bound, and run only
   * when no request's text waits, in small batches (batcher.ts). The caller bounds how much it
   * submits at once.
   */
  background?: boolean;
}

export interface Embedded {
  vectors: Float32Array[];
  /** Tokens fed to the model for each text (prompt and special tokens included). */
  tokens: number[];
  /** Indices of the texts that were truncated. */
  truncated: number[];
}

export interface Encoder {
  readonly bundle: Bundle;
  readonly fingerprint: string;
  readonly dimension: number;
  readonly maxTokens: number;
  readonly provider: ExecutionProvider;
  readonly warning: string | undefined;
  readonly quantizer: Quantizer;
  embed(texts: readonly string[], options: EmbedOptions): Promise<Embedded>;
  /** Texts of requests waiting for or inside the model (background work not counted). */
  queueDepth(): number;
  /** Texts of background work waiting for or inside the model. */
  backgroundDepth(): number;
  batchStats(): Readonly<BatchStats>;
  /** Calls `listener` after every model run (metrics). */
  onBatch(listener: (event: BatchEvent) => void): void;
  healthy(): boolean;
  close(): Promise<void>;
}

/**
 * onnxruntime's intra-op threads: always an explicit count. Left at 0, onnxruntime pins its pool
 * threads to cores, and on a 2-core VM the int8 encoder then ran 70 or 120 texts/s depending on
 * the run.
 */
export function encoderThreads(options: Pick<EncoderOptions, 'intraOpThreads'>): number {
  return options.intraOpThreads > 0 ? options.intraOpThreads : availableParallelism();
}

export async function createEncoder(bundle: Bundle, options: EncoderOptions): Promise<Encoder> {
  const { manifest } = bundle;
  const quantizer = createQuantizer(bundle.ranges);
  const tokenizer = createTokenizer(bundle.tokenizerPath, manifest.max_tokens);
  const runner = await startModelRunner({
    modelPath: bundle.modelPath,
    expectedInputs: manifest.onnx.inputs,
    output: manifest.onnx.output,
    dimension: bundle.dimension,
    provider: options.executionProvider,
    cudaFallback: options.cudaFallback,
    cudaDeviceId: options.cudaDeviceId,
    intraOpThreads: encoderThreads(options),
  }).catch((e: Error) => {
    throw new Error(`model bundle ${bundle.dir}: ${e.message}`);
  });
  const batcher = createBatcher(runner, {
    maxBatchTokens: options.maxBatchTokens,
    maxBatchSize: options.maxBatchSize,
    padId: tokenizer.padId,
    dimension: bundle.dimension,
  });

  // Admission control happens synchronously when a request arrives, before tokenization, so
  // concurrent requests cannot all pass the check and overfill the queue together.
  let reserved = 0;
  const depth = () => batcher.depth('request') + reserved;

  const encoder: Encoder = {
    bundle,
    fingerprint: bundle.fingerprint,
    dimension: bundle.dimension,
    maxTokens: manifest.max_tokens,
    provider: runner.provider,
    warning: runner.warning,
    quantizer,
    queueDepth: depth,
    backgroundDepth: () => batcher.depth('background'),
    batchStats: () => batcher.stats(),
    onBatch: (listener) => batcher.onBatch(listener),
    healthy: () => runner.alive(),
    close: () => {
      batcher.close(errors.shuttingDown('the model is shutting down; retry on another instance or after the restart'));
      return runner.close();
    },
    async embed(texts, { inputType, truncate, background = false }) {
      if (!background && depth() + texts.length > options.queueSize) {
        const wait = batcher.retryAfterSeconds();
        throw errors.queueFull(`the model queue is full (${depth()} of ${options.queueSize} texts); retry in ${wait} s`, { retryAfterSeconds: wait });
      }
      const reserve = background ? 0 : texts.length;
      reserved += reserve;
      let tokenized: TokenizedText[];
      try {
        const prompt = manifest.prompts[inputType];
        tokenized = await tokenizer.tokenize(prompt ? texts.map((t) => prompt + t) : texts);
      } finally {
        reserved -= reserve;
      }
      const truncated = tokenized.flatMap((t, i) => (t.truncated ? [i] : []));
      if (!truncate && truncated.length > 0) {
        const many = truncated.length > 1;
        throw errors.inputTooLong(
          `input${many ? 's' : ''} ${truncated.join(', ')} exceed${many ? '' : 's'} the model's ${manifest.max_tokens} tokens; ` +
            `shorten ${many ? 'them' : 'it'} or send "truncate": true`,
        );
      }
      const vectors = await batcher.submit(tokenized, background ? 'background' : 'request');
      return { vectors, tokens: tokenized.map((t) => t.ids.length), truncated };
    },
  };

  // A probe through the whole path proves the graph returns [1, dimension] before we serve.
  try {
    await encoder.embed(['qembed start-up probe'], { inputType: 'document', truncate: true });
  } catch (e) {
    await runner.close();
    throw new Error(`model bundle ${bundle.dir}: probe inference failed: ${(e as Error).message}`);
  }
  return encoder;
}
