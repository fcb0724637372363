/**
 * One bounded queue in front of the model, as in text-embeddings-inference: texts from all
 * concurrent requests wait here and are merged into batches under a token budget.
 *
 * On a CPU, padding is the enemy (a padded batch of mixed lengths is slower than the same
 * texts one by one), so a batch is built around the oldest waiting text from the texts whose
 * length is closest to it: nothing starves, and padding stays small. Each text is computed
 * from its own tokens only (the graph masks padding), so batching never changes results.
 *
 * Background work (re-encoding collections) waits in a lane of its own: a background batch
 * runs when no request's text waits, or after BACKGROUND_EVERY request batches in a row (so a
 * saturated service still makes progress on it), and holds at most BACKGROUND_BATCH_SIZE texts:
 * a request waits for one small batch at most, and background work takes at most one batch in
 * BACKGROUND_EVERY + 1 while requests keep the model busy.
 *
 * "No request waits" is process-wide: every model loaded here (the served one and an older one
 * kept while collections are re-encoded) shares the same CPU cores, so a re-encoding on one
 * model must also yield to requests on another. Measured on 2 cores (npm run soak, 16 clients):
 * with per-model lanes, a re-encoding halved the other model's throughput.
 */
import type { ModelRunner } from './model-runner.js';
import type { TokenizedText } from './tokenizer.js';

export interface BatcherOptions {
  maxBatchTokens: number;
  maxBatchSize: number;
  padId: number;
  dimension: number;
  /**
   * Largest padded/real token ratio worth accepting to grow a batch (plus 16 tokens of slack).
   * Measured on 2 CPU cores, calls of 32 MS MARCO passages: 1.3 cost 31.5 ms of CPU a text,
   * 1.05 or 1.0 about 25 (one thread); padding costs more than bigger batches save.
   */
  maxPaddingRatio?: number;
}

/** Most texts in one background batch: bounds how long a request can wait behind one. */
export const BACKGROUND_BATCH_SIZE = 8;
/** Request batches after which a waiting background batch runs even though requests wait. */
export const BACKGROUND_EVERY = 8;

export type Lane = 'request' | 'background';

/** The batchers of this process (computed from their queues, so no count can drift). */
const foreground = {
  batchers: new Set<{ requestDepth(): number; pump(): void }>(),
  /** Request batches started (in any batcher) since the last background batch started. */
  batchesSinceBackground: 0,
  /** Request texts waiting or running in any batcher. */
  active(): number {
    let n = 0;
    for (const b of this.batchers) n += b.requestDepth();
    return n;
  },
  wake(): void {
    for (const b of [...this.batchers]) b.pump();
  },
};

interface Job {
  readonly tokens: TokenizedText;
  readonly lane: Lane;
  resolve(vector: Float32Array): void;
  reject(error: Error): void;
}

export interface BatchStats {
  batches: number;
  texts: number;
  tokens: number;
  paddedTokens: number;
  lastBatchSize: number;
}

/** What one model run did; the metrics endpoint listens. */
export interface BatchEvent {
  size: number;
  tokens: number;
  paddedTokens: number;
  seconds: number;
}

export interface Batcher {
  /** Calls `listener` after every model run. */
  onBatch(listener: (event: BatchEvent) => void): void;
  /** Texts waiting or running in a lane (both lanes when not given). */
  depth(lane?: Lane): number;
  stats(): Readonly<BatchStats>;
  submit(items: readonly TokenizedText[], lane?: Lane): Promise<Float32Array[]>;
  /** Seconds a client should wait before retrying when the queue is full. */
  retryAfterSeconds(): number;
  /** Rejects every waiting text with `error` and every later one; the batch running finishes. */
  close(error: Error): void;
}

export function createBatcher(runner: ModelRunner, options: BatcherOptions): Batcher {
  const { maxBatchTokens, padId, dimension } = options;
  const maxPaddingRatio = options.maxPaddingRatio ?? 1.05;
  const queues: Record<Lane, Job[]> = { request: [], background: [] };
  let running: { lane: Lane; texts: number } | null = null;
  let textsPerSecond = 0;
  const stats: BatchStats = { batches: 0, texts: 0, tokens: 0, paddedTokens: 0, lastBatchSize: 0 };
  const listeners: ((event: BatchEvent) => void)[] = [];
  let closedWith: Error | null = null;

  /** The oldest job plus the jobs of nearest length that fit the budgets. */
  function takeBatch(queue: Job[], maxBatchSize: number): Job[] {
    const order = queue.map((_, i) => i).sort((a, b) => queue[a]!.tokens.ids.length - queue[b]!.tokens.ids.length || a - b);
    const head = order.indexOf(0);
    let lo = head;
    let hi = head;
    const len = (k: number) => queue[order[k]!]!.tokens.ids.length;
    let realTokens = len(head);
    const fits = (minLen: number, maxLen: number, count: number, real: number) =>
      count <= maxBatchSize && maxLen * count <= maxBatchTokens && maxLen * count <= maxPaddingRatio * real + 16;
    for (;;) {
      const canLo = lo > 0 && fits(len(lo - 1), len(hi), hi - lo + 2, realTokens + len(lo - 1));
      const canHi = hi < order.length - 1 && fits(len(lo), len(hi + 1), hi - lo + 2, realTokens + len(hi + 1));
      if (!canLo && !canHi) break;
      const headLen = len(head);
      if (canLo && (!canHi || headLen - len(lo - 1) <= len(hi + 1) - headLen)) {
        lo--;
        realTokens += len(lo);
      } else {
        hi++;
        realTokens += len(hi);
      }
    }
    const picked = new Set(order.slice(lo, hi + 1));
    const batch = [...picked].sort((a, b) => a - b).map((i) => queue[i]!);
    for (let i = queue.length - 1; i >= 0; i--) if (picked.has(i)) queue.splice(i, 1);
    return batch;
  }

  async function runBatch(batch: Job[]): Promise<void> {
    const batchSize = batch.length;
    const sequence = Math.max(...batch.map((j) => j.tokens.ids.length));
    const inputIds = new BigInt64Array(batchSize * sequence).fill(BigInt(padId));
    const attentionMask = new BigInt64Array(batchSize * sequence);
    const tokenTypeIds = new BigInt64Array(batchSize * sequence);
    let real = 0;
    batch.forEach((job, b) => {
      const { ids, typeIds } = job.tokens;
      const base = b * sequence;
      for (let t = 0; t < ids.length; t++) {
        inputIds[base + t] = BigInt(ids[t]!);
        attentionMask[base + t] = 1n;
        tokenTypeIds[base + t] = BigInt(typeIds[t] ?? 0);
      }
      real += ids.length;
    });
    const started = performance.now();
    try {
      const out = await runner.run({ batch: batchSize, sequence, inputIds, attentionMask, tokenTypeIds });
      batch.forEach((job, b) => job.resolve(out.slice(b * dimension, (b + 1) * dimension)));
    } catch (e) {
      for (const job of batch) job.reject(e as Error);
    }
    const seconds = (performance.now() - started) / 1000;
    const rate = batchSize / Math.max(seconds, 1e-3);
    textsPerSecond = textsPerSecond === 0 ? rate : 0.8 * textsPerSecond + 0.2 * rate;
    stats.batches++;
    stats.texts += batchSize;
    stats.tokens += real;
    stats.paddedTokens += batchSize * sequence;
    stats.lastBatchSize = batchSize;
    for (const listener of listeners) listener({ size: batchSize, tokens: real, paddedTokens: batchSize * sequence, seconds });
  }

  function pump(): void {
    if (running) return;
    const backgroundDue = queues.background.length > 0 && (foreground.batchesSinceBackground >= BACKGROUND_EVERY || foreground.active() === 0);
    const lane: Lane | null = backgroundDue ? 'background' : queues.request.length > 0 ? 'request' : null;
    if (!lane) return;
    foreground.batchesSinceBackground = lane === 'request' ? foreground.batchesSinceBackground + 1 : 0;
    const batch = takeBatch(queues[lane], lane === 'request' ? options.maxBatchSize : Math.min(options.maxBatchSize, BACKGROUND_BATCH_SIZE));
    running = { lane, texts: batch.length };
    void runBatch(batch).finally(() => {
      running = null;
      // After a request batch, other models' background work may have waited for it.
      if (lane === 'request') foreground.wake();
      else pump();
    });
  }

  const depth = (lane?: Lane) => {
    const waiting = lane ? queues[lane].length : queues.request.length + queues.background.length;
    return waiting + (running && (!lane || running.lane === lane) ? running.texts : 0);
  };
  const member = { requestDepth: () => depth('request'), pump };
  foreground.batchers.add(member);
  const retryAfterSeconds = () => Math.max(1, Math.ceil(depth('request') / Math.max(textsPerSecond, 1)));

  return {
    onBatch: (listener) => void listeners.push(listener),
    depth,
    stats: () => stats,
    retryAfterSeconds,
    close(error) {
      closedWith = error;
      foreground.batchers.delete(member);
      for (const lane of ['request', 'background'] as const) for (const job of queues[lane].splice(0)) job.reject(error);
      foreground.wake();
    },
    submit(items, lane = 'request') {
      if (closedWith) return Promise.reject(closedWith);
      if (items.length === 0) return Promise.resolve([]);
      const promises = items.map((tokens) => new Promise<Float32Array>((resolve, reject) => queues[lane].push({ tokens, lane, resolve, reject })));
      pump();
      return Promise.all(promises);
    },
  };
}
