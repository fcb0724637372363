/** Messages between the encoder (main thread) and the model thread that owns the onnxruntime session. */

export type ExecutionProvider = 'cpu' | 'cuda';

export interface ModelInit {
  modelPath: string;
  expectedInputs: string[];
  output: string;
  dimension: number;
  provider: ExecutionProvider;
  cudaFallback: boolean;
  cudaDeviceId: number;
  intraOpThreads: number;
}

export type InitReply =
  | { type: 'ready'; provider: ExecutionProvider; warning?: string; inputs: string[] }
  | { type: 'failed'; message: string };

export interface RunRequest {
  type: 'run';
  id: number;
  batch: number;
  sequence: number;
  /** int64 tensors, batch × sequence, row-major. */
  inputIds: BigInt64Array;
  attentionMask: BigInt64Array;
  tokenTypeIds: BigInt64Array | null;
}

export type RunReply =
  | { type: 'result'; id: number; embeddings: Float32Array }
  | { type: 'error'; id: number; message: string };
