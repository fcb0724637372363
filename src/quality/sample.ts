/**
 * What a collection's recall is measured with: a bounded, uniform sample of the float32 query
 * vectors it served (reservoir sampling: every query served so far had the same chance to be
 * kept; never the texts), and documents standing in for queries until enough real ones are
 * measured. Each entry carries its latest measurement. The sample is persisted with its
 * measurements in the store's meta table (one key per collection), as JSON with the vectors and
 * positions in base64.
 */
import type { FirstStageType } from '../first-stage/query.js';
import { FIRST_STAGE_TYPES } from '../first-stage/query.js';
import type { QueryMeasurement } from './measure.js';

export interface SampledQuery {
  vector: Float32Array;
  /** A document standing in for a query: its rowid, left out of its own rankings. */
  self?: number;
  measurement?: QueryMeasurement;
}

export interface CollectionSample {
  /** Served queries, at most the sample size. */
  queries: SampledQuery[];
  /** Queries served since the sample began (the reservoir's denominator). */
  seen: number;
  /** Documents serving as queries. */
  documents: SampledQuery[];
}

export const emptySample = (): CollectionSample => ({ queries: [], seen: 0, documents: [] });

/** Keeps `vector` with probability size/seen (Algorithm R); returns whether it was kept. */
export function offer(sample: CollectionSample, vector: Float32Array, size: number, random: () => number = Math.random): boolean {
  sample.seen++;
  if (sample.queries.length < size) {
    sample.queries.push({ vector: Float32Array.from(vector) });
    return true;
  }
  const j = Math.floor(random() * sample.seen);
  if (j >= size) return false;
  sample.queries[j] = { vector: Float32Array.from(vector) };
  return true;
}

// --- Persistence --------------------------------------------------------------------------

interface StoredQuery {
  v: string;
  self?: number;
  m?: { p: Record<string, string>; f: string; n: number; g: number; t: number };
}
/**
 * 3: positions as 16-bit integers to a depth of 20,000 (multipliers up to 2,000; 2 measured to
 * 1,000, which would read as not found beyond). Another version is dropped: measured again.
 */
const VERSION = 3;

interface Stored {
  version: number;
  /** Served queries held (queries.length), first in the text: storedQueryCount reads only it. */
  count: number;
  dimension: number;
  seen: number;
  queries: StoredQuery[];
  documents: StoredQuery[];
}

const b64 = (a: Float32Array | Uint16Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
/** Little-endian on every platform Node runs on (x64, arm64), as the vectors are. */
const uint16s = (s: string) => {
  const b = Buffer.from(s, 'base64');
  return new Uint16Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
const floats = (s: string) => {
  const b = Buffer.from(s, 'base64');
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

function storeQuery(q: SampledQuery): StoredQuery {
  const m = q.measurement;
  return {
    v: b64(q.vector),
    ...(q.self !== undefined && { self: q.self }),
    ...(m && { m: { p: Object.fromEntries(FIRST_STAGE_TYPES.map((t) => [t, b64(m.positions[t])])), f: m.fingerprint, n: m.documents, g: m.generation, t: m.at } }),
  };
}

function loadQuery(s: StoredQuery, dimension: number): SampledQuery | undefined {
  const vector = floats(s.v);
  if (vector.length !== dimension) return undefined;
  const q: SampledQuery = { vector, ...(s.self !== undefined && { self: s.self }) };
  if (s.m && FIRST_STAGE_TYPES.every((t) => typeof s.m!.p[t] === 'string')) {
    const positions = Object.fromEntries(FIRST_STAGE_TYPES.map((t) => [t, uint16s(s.m!.p[t]!)])) as Record<FirstStageType, Uint16Array>;
    q.measurement = { positions, fingerprint: s.m.f, documents: s.m.n, generation: s.m.g, at: s.m.t };
  }
  return q;
}

export function serializeSample(sample: CollectionSample, dimension: number): string {
  const stored: Stored = { version: VERSION, count: sample.queries.length, dimension, seen: sample.seen, queries: sample.queries.map(storeQuery), documents: sample.documents.map(storeQuery) };
  return JSON.stringify(stored);
}

/**
 * Served queries in a stored sample (0 when there is none or it cannot be read), from its head
 * only: a sample is up to ~1 MB of JSON, and persisting asks this once a minute per collection.
 */
export function storedQueryCount(text: string | undefined): number {
  const count = text ? /^\{"version":(\d+),"count":(\d+),/.exec(text.slice(0, 64)) : null;
  return count && Number(count[1]) === VERSION ? Number(count[2]) : 0;
}

/** The sample stored for a collection of `dimension`, cut to `size` queries; empty when there is none or it does not fit. */
export function parseSample(text: string | undefined, dimension: number, size: number): CollectionSample {
  if (!text) return emptySample();
  try {
    const s = JSON.parse(text) as Stored;
    if (s.version !== VERSION || s.dimension !== dimension) return emptySample();
    const load = (list: StoredQuery[]) => list.flatMap((q) => loadQuery(q, dimension) ?? []);
    return { queries: load(s.queries).slice(0, size), seen: s.seen, documents: load(s.documents) };
  } catch {
    return emptySample();
  }
}
