/**
 * Measured recall per collection, in the service: every search offers its float32 query vector
 * to the collection's sample (sample.ts), and a background loop measures the sampled queries
 * (measure.ts) a slice at a time, taking a bounded share of one core: after each slice it waits
 * long enough that the slices take at most `cpuShare` of the time while searches are being
 * served (`idleCpuShare` when none was for BUSY_MS), so it yields to requests between slices and
 * never holds the event loop for longer than one page of the scan. Why two shares: under a
 * saturating load every slice is a slice of searches not served (bench:quality-cost), so the
 * loaded share is small; an idle service has nothing to lose and measures at once. From the
 * measurements: recall@10 at every multiplier and first stage with an interval (estimate.ts),
 * and the multiplier `rescore_multiplier: "auto"` uses.
 *
 * What is measured again, and when: a query not measured yet; a measurement of other codes (a
 * re-encoding), or of a collection that has since grown or shrunk by more than a tenth, or whose
 * documents changed and that is older than an hour. Until MIN_QUERIES served queries are
 * measured, STAND_INS documents serve as queries (stand-ins.ts), and answers say so.
 *
 * Persistence: each collection's sample, with its measurements, is written to the store's meta
 * table (key `quality:<collection id>`) once a minute when it changed and when the service
 * stops, and read back at first use after a start: estimates survive restarts without being
 * computed again. On PostgreSQL every API process keeps its own sample and measures it; the
 * meta row holds the last one written by a process holding at least as many served queries as
 * it, which a process starting reads.
 */
import type { FirstStageIndex } from '../first-stage/first-stage.js';
import { FIRST_STAGE_TYPES, type FirstStageType } from '../first-stage/query.js';
import type { Quantizer } from '../quantization/quantize.js';
import type { CollectionRow, Store } from '../store/store.js';
import { chooseMultiplier, DEFAULT_TARGET_RECALL, estimateRecall, MULTIPLIER_MAX, type MultiplierChoice, type RecallAtMultiplier, REPORTED_MULTIPLIERS } from './estimate.js';
import type { CodeTransform } from '../transform/transform.js';
import { codesKey, measureQueries, type Pace, type QueryMeasurement, unpaced } from './measure.js';
import { type CollectionSample, offer, parseSample, type SampledQuery, serializeSample, storedQueryCount } from './sample.js';
import { drawDocuments } from './stand-ins.js';

/** Measured served queries from which their estimate replaces the documents'. */
export const MIN_QUERIES = 50;
/** Documents standing in for queries before then. */
export const STAND_INS = 100;
/** Queries measured in one scan of the collection's codes. */
const BATCH = 16;
/** A measurement of a collection whose size has changed by more than this share is taken again. */
const GROWTH = 0.1;
/** A measurement older than this, of a collection whose documents changed since, is taken again. */
const REMEASURE_AFTER_MS = 60 * 60 * 1000;
const IDLE_MS = 1000;
/** A search served this recently makes the service busy: the measurement takes `cpuShare`. */
const BUSY_MS = 250;
const PERSIST_EVERY_MS = 60 * 1000;

export interface QualityOptions {
  /** Query vectors kept per collection; 0 turns the measurement off (nothing kept, nothing measured). */
  sampleSize: number;
  /** Share of one core the background measurement may take while searches are served, in (0, 1]. */
  cpuShare: number;
  /** Share it may take when no search was served for BUSY_MS, in (0, 1]. */
  idleCpuShare: number;
}

export interface QualityDeps {
  store: Pick<Store, 'getMeta' | 'setMeta' | 'listCollections' | 'getCollectionById' | 'int8CodePage'>;
  firstStage: Pick<FirstStageIndex, 'nearest'>;
  /** The quantizer of the model whose codes the collection holds; undefined when that model is not loaded here (not measured meanwhile). */
  quantizerOf(c: CollectionRow): Quantizer | undefined;
  /** The transform the collection's first-stage codes are made with (undefined: first dims). */
  transformOf?(c: CollectionRow): CodeTransform | undefined;
  options: QualityOptions;
  /** A measurement that failed (it is tried again later); never thrown to a request. */
  onError?(e: unknown, collection: string): void;
}

export type QualityBasis = 'queries' | 'documents';

export interface FirstStageQuality {
  /** What auto chooses now for top_k 10 and the collection's target. */
  autoMultiplier: number;
  targetMet: boolean;
  /** Recall@10 at REPORTED_MULTIPLIERS and the one auto chooses, ascending; empty before any measurement. */
  recall: RecallAtMultiplier[];
}

export interface QualityReport {
  enabled: boolean;
  /** What the estimates rest on: served queries, or documents standing in for them; null before any measurement. */
  basis: QualityBasis | null;
  /** Measurements the estimates rest on. */
  measured: number;
  /** Sampled queries (or stand-ins) waiting for a measurement, new or out of date. */
  pending: number;
  /** Query vectors held, and queries served since the sample began. */
  sampled: number;
  seen: number;
  /** The newest measurement: when, and the collection's size then. */
  measuredAt: string | null;
  documentsAtMeasurement: number | null;
  targetRecall: number;
  /** A measurement running now: its queries, and the documents its scan has read of the collection's. */
  measuring: { queries: number; scanned: number; documents: number } | null;
  firstStages: Record<FirstStageType, FirstStageQuality>;
}

/** How a search's multiplier was chosen, and the recall it is estimated to keep. */
export interface RecallChoice extends MultiplierChoice {
  basis: QualityBasis | null;
  measured: number;
  target: number;
}

export interface QualityMonitor {
  /** Offers a served query's vector to the collection's sample; never throws. */
  record(c: CollectionRow, vector: Float32Array): void;
  /** The multiplier for `requested` (a number, or auto up to `max`), with its estimate. */
  choose(c: CollectionRow, stage: FirstStageType, requested: number | 'auto', max?: number): RecallChoice;
  report(c: CollectionRow): QualityReport;
  /** Measures everything pending now, at full speed (`qembed quality --measure`, tests); returns the queries measured. */
  measureNow(c: CollectionRow): Promise<number>;
  /** The served queries sampled for the collection (their vectors): what a candidate's codes are compared on. */
  servedQueries(c: CollectionRow): Float32Array[];
  /** Forgets a deleted collection's sample. */
  forget(collectionId: number): void;
  /** Starts the background loop (a serving process). */
  start(): void;
  /** Stops the loop (waits for its slice) and persists what changed. */
  stop(): Promise<void>;
  /** Writes the changed samples now. */
  persist(): void;
}

class Stopped extends Error {}

const metaKey = (id: number) => `quality:${id}`;

const isCurrent = (m: QueryMeasurement | undefined, c: CollectionRow, now: number): boolean =>
  m !== undefined &&
  m.fingerprint === codesKey(c) &&
  Math.abs(c.document_count - m.documents) <= GROWTH * Math.max(m.documents, 1) &&
  (m.generation === c.generation || now - m.at < REMEASURE_AFTER_MS);

interface State {
  sample: CollectionSample;
  dimension: number;
  dirty: boolean;
  /** Estimates by first stage, computed at first use after a measurement changed. */
  estimates?: { basis: QualityBasis | null; measured: number; byStage: Record<FirstStageType, RecallAtMultiplier[]>; newest: QueryMeasurement | undefined };
}

export function createQualityMonitor(deps: QualityDeps): QualityMonitor {
  const { store, options } = deps;
  const enabled = options.sampleSize > 0;
  const minQueries = Math.min(MIN_QUERIES, options.sampleSize);
  const states = new Map<number, State>();
  let stopped = false;
  let running: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  let lastPersist = Date.now();
  /** When the last search was served (record, choose): the loop's share follows it. */
  let lastSearch = 0;
  /** The measurement running now (one at a time: the loop's, or measureNow's). */
  let current: { collectionId: number; queries: number; scanned: number; documents: number } | undefined;

  const stateOf = (c: CollectionRow): State => {
    let s = states.get(c.id);
    if (!s || s.dimension !== c.dimension) {
      s = { sample: parseSample(store.getMeta(metaKey(c.id)), c.dimension, options.sampleSize), dimension: c.dimension, dirty: false };
      states.set(c.id, s);
    }
    return s;
  };

  /** The measurements of the collection's current codes, and which kind the estimate rests on. */
  const estimatesOf = (c: CollectionRow, s: State) => {
    if (s.estimates) return s.estimates;
    const key = codesKey(c);
    const ofCodes = (list: SampledQuery[]) => list.flatMap((q) => (q.measurement && q.measurement.fingerprint === key ? [q.measurement] : []));
    const queries = ofCodes(s.sample.queries);
    const documents = ofCodes(s.sample.documents);
    const basis: QualityBasis | null = queries.length >= minQueries || (queries.length > 0 && documents.length === 0) ? 'queries' : documents.length > 0 ? 'documents' : null;
    const used = basis === 'queries' ? queries : basis === 'documents' ? documents : [];
    const byStage = Object.fromEntries(FIRST_STAGE_TYPES.map((t) => [t, estimateRecall(used.map((m) => m.positions[t]))])) as Record<FirstStageType, RecallAtMultiplier[]>;
    const newest = used.reduce<QueryMeasurement | undefined>((a, m) => (!a || m.at > a.at ? m : a), undefined);
    s.estimates = { basis, measured: used.length, byStage, newest };
    return s.estimates;
  };

  const targetOf = (c: CollectionRow) => c.target_recall ?? DEFAULT_TARGET_RECALL;

  /** The next batch to measure in `c`, or nothing: served queries first, then stand-ins while too few are measured. */
  const nextBatch = (c: CollectionRow, quantizer: Quantizer): SampledQuery[] => {
    if (c.document_count === 0) return [];
    const s = stateOf(c);
    const now = Date.now();
    const stale = (list: SampledQuery[]) => list.filter((q) => !isCurrent(q.measurement, c, now));
    const queries = stale(s.sample.queries);
    if (queries.length > 0) return queries.slice(0, BATCH);
    // Every served query in the sample is measured now: stand-ins only while they are too few.
    if (s.sample.queries.length >= minQueries) return [];
    const documents = stale(s.sample.documents);
    if (documents.length > 0) return documents.slice(0, BATCH);
    if (s.sample.documents.length >= Math.min(STAND_INS, c.document_count)) return [];
    const taken = new Set(s.sample.documents.map((d) => d.self!));
    const drawn = drawDocuments(store, c.id, Math.min(BATCH, STAND_INS - s.sample.documents.length), quantizer, taken);
    s.sample.documents.push(...drawn);
    s.dirty = true;
    return drawn;
  };

  const measureBatch = async (c: CollectionRow, quantizer: Quantizer, batch: SampledQuery[], pace: Pace) => {
    const progress = { collectionId: c.id, queries: batch.length, scanned: 0, documents: c.document_count };
    current = progress;
    let results: QueryMeasurement[];
    try {
      const transform = deps.transformOf?.(c);
      results = await measureQueries({ store, firstStage: deps.firstStage, collection: c, quantizer, codes: codesKey(c), ...(transform && { transform }) }, batch, pace, (n) => (progress.scanned = n));
    } finally {
      if (current === progress) current = undefined;
    }
    if (results.length === 0) return 0;
    batch.forEach((q, i) => (q.measurement = results[i]));
    const s = stateOf(c);
    s.dirty = true;
    s.estimates = undefined;
    return results.length;
  };

  // --- The background loop ---------------------------------------------------------------
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
      wake = done;
    });

  /** Each slice, then a wait that keeps the slices to the busy or idle share of the time (at least a turn of the event loop). */
  const paced: Pace = async (work) => {
    if (stopped) throw new Stopped();
    const started = performance.now();
    const result = work();
    const spent = performance.now() - started;
    const share = Date.now() - lastSearch < BUSY_MS ? options.cpuShare : options.idleCpuShare;
    await sleep(Math.max(0, (spent * (1 - share)) / share));
    if (stopped) throw new Stopped();
    return result;
  };

  let cursor = 0;
  /** One batch of the next collection (round robin) with something to measure; false when none has. */
  const step = async (): Promise<boolean> => {
    const collections = store.listCollections();
    for (let tried = 0; tried < collections.length; tried++) {
      const c = collections[(cursor + tried) % collections.length]!;
      const quantizer = deps.quantizerOf(c);
      if (!quantizer) continue;
      const batch = nextBatch(c, quantizer);
      if (batch.length === 0) continue;
      cursor = (cursor + tried + 1) % collections.length;
      try {
        await measureBatch(c, quantizer, batch, paced);
      } catch (e) {
        if (e instanceof Stopped) throw e;
        deps.onError?.(e, c.name);
      }
      return true;
    }
    return false;
  };

  /** Writes the changed samples; one that fails (a full disk) is reported and kept for the next time. */
  const persistChanged = () => {
    lastPersist = Date.now();
    for (const [id, s] of states) {
      if (!s.dirty) continue;
      try {
        if (!store.getCollectionById(id)) {
          states.delete(id);
          continue;
        }
        // Replicas share the row: one that served fewer queries (just started, or idle) does not
        // replace a richer sample another wrote; a process starting reads the richest one.
        if (s.sample.queries.length >= storedQueryCount(store.getMeta(metaKey(id)))) store.setMeta(metaKey(id), serializeSample(s.sample, s.dimension));
        s.dirty = false;
      } catch (e) {
        deps.onError?.(e, `collection ${id}`);
      }
    }
  };

  const loop = async () => {
    while (!stopped) {
      let worked = false;
      try {
        worked = await step();
        if (Date.now() - lastPersist >= PERSIST_EVERY_MS) persistChanged();
      } catch (e) {
        if (e instanceof Stopped) return;
        deps.onError?.(e, '(all)');
      }
      if (!worked && !stopped) await sleep(IDLE_MS);
    }
  };

  return {
    record(c, vector) {
      if (!enabled) return;
      lastSearch = Date.now();
      try {
        const s = stateOf(c);
        if (vector.length !== c.dimension) return;
        if (offer(s.sample, vector, options.sampleSize)) s.dirty = true;
      } catch (e) {
        deps.onError?.(e, c.name);
      }
    },
    choose(c, stage, requested, max = MULTIPLIER_MAX) {
      lastSearch = Date.now();
      const target = targetOf(c);
      const e = enabled ? estimatesOf(c, stateOf(c)) : undefined;
      const estimates = e?.byStage[stage] ?? [];
      const common = { basis: e?.basis ?? null, measured: e?.measured ?? 0, target };
      if (requested === 'auto') return { ...chooseMultiplier(estimates, target, max), ...common };
      const at = estimates[requested - 1] ?? null;
      return { multiplier: requested, estimate: at, targetMet: at !== null && at.low >= target, ...common };
    },
    report(c) {
      const target = targetOf(c);
      const s = enabled ? stateOf(c) : undefined;
      const e = s && estimatesOf(c, s);
      const now = Date.now();
      const pending = s ? [...s.sample.queries, ...(e?.basis === 'queries' ? [] : s.sample.documents)].filter((q) => !isCurrent(q.measurement, c, now)).length : 0;
      const firstStages = Object.fromEntries(
        FIRST_STAGE_TYPES.map((t) => {
          const all = e?.byStage[t] ?? [];
          const choice = chooseMultiplier(all, target);
          const recall = all.filter((r) => REPORTED_MULTIPLIERS.includes(r.multiplier) || r.multiplier === choice.multiplier);
          return [t, { autoMultiplier: choice.multiplier, targetMet: choice.targetMet, recall }];
        }),
      ) as Record<FirstStageType, FirstStageQuality>;
      return {
        enabled,
        basis: e?.basis ?? null,
        measured: e?.measured ?? 0,
        pending,
        sampled: s?.sample.queries.length ?? 0,
        seen: s?.sample.seen ?? 0,
        measuredAt: e?.newest ? new Date(e.newest.at).toISOString() : null,
        documentsAtMeasurement: e?.newest?.documents ?? null,
        targetRecall: target,
        measuring: current?.collectionId === c.id ? { queries: current.queries, scanned: current.scanned, documents: current.documents } : null,
        firstStages,
      };
    },
    async measureNow(c) {
      if (!enabled) return 0;
      const quantizer = deps.quantizerOf(c);
      if (!quantizer) return 0;
      let total = 0;
      for (;;) {
        const now = store.getCollectionById(c.id);
        if (!now) return total;
        const batch = nextBatch(now, quantizer);
        if (batch.length === 0) return total;
        const n = await measureBatch(now, quantizer, batch, unpaced);
        if (n === 0) return total;
        total += n;
      }
    },
    servedQueries: (c) => (enabled ? stateOf(c).sample.queries.map((q) => q.vector) : []),
    forget(collectionId) {
      states.delete(collectionId);
      if (store.getMeta(metaKey(collectionId)) !== undefined) store.setMeta(metaKey(collectionId), '');
    },
    start() {
      if (!enabled || running) return;
      stopped = false;
      running = loop();
    },
    async stop() {
      stopped = true;
      wake?.();
      await running;
      running = undefined;
      persistChanged();
    },
    persist: persistChanged,
  };
}
