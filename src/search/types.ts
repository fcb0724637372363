/**
 * What search offers and takes: its limits, the requests and answers of its operations, and the
 * SearchService interface that http/, the CLI and the evaluator call. No logic lives here.
 */
import type { Encoder } from '../encoder/encoder.js';
import type { FirstStageIndex } from '../first-stage/first-stage.js';
import { FIRST_STAGE_TYPES, type FirstStageType } from '../first-stage/query.js';
import { MULTIPLIER_MAX, SUMMARY_MULTIPLIERS } from '../quality/estimate.js';
import type { QualityBasis, QualityOptions, QualityReport } from '../quality/monitor.js';

export type { QualityBasis, QualityOptions, QualityReport } from '../quality/monitor.js';
import type { MetadataFilter, Store } from '../store/store.js';

export const TOP_K_MAX = 1000;
/** The largest rescore multiplier: also the depth the recall measurement goes to (quality/estimate.ts). */
export const RESCORE_MULTIPLIER_MAX = MULTIPLIER_MAX;
/** The multipliers a summary of a collection's recall shows (gauges, `qembed quality`). */
export const RECALL_SUMMARY_MULTIPLIERS = SUMMARY_MULTIPLIERS;
/** Candidates one search may rescore (top_k × multiplier): the most it could before multipliers above 20, 1,000 × 20. */
export const CANDIDATES_MAX = 20_000;
/** Documents `rescore: "exact"` scans at most by default (QEMBED_EXACT_MAX_DOCUMENTS): a full int8 scan holds the event loop. */
export const EXACT_MAX_DOCUMENTS_DEFAULT = 200_000;
export const DOCUMENT_ID_MAX_CHARS = 256;
/** Document ids: any characters but U+0000 (SQLite's text functions stop there). */
export const DOCUMENT_ID_PATTERN = '^[^\\u0000]*$';
/**
 * Collection names: A-Z a-z 0-9 _ . - (1 to 64), not starting with a dot or a dash, so that
 * "." and ".." (which clients normalise out of URLs) and option-like names cannot exist.
 */
export const COLLECTION_NAME_PATTERN = '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$';
/** Deepest metadata nesting accepted: deeper values are refused before anything is encoded. */
export const METADATA_MAX_DEPTH = 64;
/** Filter keys: top-level metadata keys without `"` or `\` (they are quoted in a JSON path). */
export const FILTER_KEY_PATTERN = '^[^"\\\\]{1,128}$';
export const FILTER_MAX_KEYS = 16;
/**
 * Most documents one page of a listing holds. Texts are returned whole, so this bounds a page:
 * at most 200 × QEMBED_MAX_INPUT_CHARS characters of text (20 M at the default 100,000), where
 * 1,000 would allow 100 M.
 */
export const LIST_LIMIT_MAX = 200;
export const LIST_LIMIT_DEFAULT = 20;
/** A listing's cursor (search/cursor.ts): base64url of two integers of at most 16 digits and a colon. */
export const CURSOR_MAX_CHARS = 44;
export const CURSOR_PATTERN = '^[A-Za-z0-9_-]+$';
/** The first stages a search may ask for: those src/first-stage/ offers. */
export const FIRST_STAGES = FIRST_STAGE_TYPES;
export type FirstStage = FirstStageType;

export interface DocumentInput {
  id: string;
  /** The text: encoded, unless `vector` is given (then only stored). Optional with a vector. */
  text?: string;
  /**
   * The document's float32 embedding, computed elsewhere with the collection's model (the
   * upsert names it): quantized exactly as an encoded text's, never re-encoded.
   */
  vector?: Float32Array;
  metadata?: Record<string, unknown>;
}

export interface UpsertOptions {
  /** Cut texts past the model's max tokens (true) or refuse them with 413. */
  truncate?: boolean;
  /** The model (fingerprint or name) the documents' vectors come from; required with vectors. */
  model?: string;
}

export interface UpsertResult {
  /** Documents written with new codes (new ids, or a changed text). */
  upserted: number;
  /** Documents whose text was unchanged but whose metadata changed (not re-encoded). */
  metadataUpdated: number;
  /** Documents already stored with the same text and metadata (skipped). */
  unchanged: number;
  /** Input tokens the model saw. */
  inputTokens: number;
}

export interface CollectionInfo {
  name: string;
  fingerprint: string;
  dimension: number;
  /** Bits of each document's binary code the first stage scans (the first dimensions'). */
  codeBits: number;
  createdAt: string;
  documents: number;
  /** Bytes of the stored values (ids, texts, metadata, codes, hashes); SQLite overhead not included. */
  payloadBytes: number;
  /** Bytes of the in-memory index (null while it is not loaded). */
  memoryBytes: number | null;
  index: { documents: number; slots: number; tombstones: number } | null;
  /** A re-encoding for another model in progress (searches use the current codes meanwhile). */
  reencode: ReencodeStatus | null;
  /** What its first-stage codes are made with, the transforms fitted for it, and a switch under way. */
  transform: CollectionTransforms;
  /** Whether its codes are the served model's, and whether they can be searched now. */
  model: ModelState;
  /** Recall measured on its own queries (quality/monitor.ts), the target auto aims for. */
  quality: QualityReport;
}

export interface ModelState {
  /** served: its codes are the served model's; stale: another model's (re-encoding or not). */
  state: 'served' | 'stale';
  /** The served model's fingerprint. */
  servedFingerprint: string;
  /** The model of its codes is loaded: searches and writes work (on the old codes when stale). */
  searchable: boolean;
  /** When stale: what is happening to it, or what to do about it. */
  action?: string;
}

/** How a re-encoding ended: bound to the target, its collection deleted, or the service stopping. */
/** `elsewhere`: another API process on the same database runs it (store.claimReencode). */
export type ReencodeOutcome = 'done' | 'deleted' | 'stopped' | 'elsewhere';

/** A collection's first-stage transforms (transforms.ts). */
export interface CollectionTransforms {
  /** The fingerprint of the transform its codes are made with; null: first dims (the sign of the first code_bits dimensions). */
  served: string | null;
  /** Transforms stored for it (fitted by the worker, or a seeded rotation), newest first. */
  available: TransformView[];
  /** A switch of its codes under way (searches use the served codes meanwhile). */
  switching: TransformSwitchStatus | null;
}

export interface TransformView {
  fingerprint: string;
  method: string;
  bits: number;
  createdAt: string;
  /** How it was made (the fit's training and evaluation), the recall measured against the codes it would replace, and what was decided. */
  summary: Record<string, unknown>;
}

/** How a candidate is switched to: whatever it measures (`always`), or only when it measures better than the served codes. */
export const SWITCH_POLICIES = ['always', 'if-better'] as const;
export type SwitchPolicy = (typeof SWITCH_POLICIES)[number];

export interface TransformSwitchStatus {
  target: string;
  policy: SwitchPolicy;
  /** staging: codes computed from the stored int8 codes; measuring: the candidate's recall against the served codes'. */
  phase: 'staging' | 'measuring';
  /** Documents with staged codes. */
  done: number;
  total: number;
  startedAt: string;
  retries: number;
  lastError: string | null;
}

/** A sample of a collection's int8 codes, for a fit. */
export interface CodeSample {
  collectionId: number;
  fingerprint: string;
  /** The folder of the bundle whose calibration ranges dequantize the codes. */
  bundleDir: string;
  dimension: number;
  codeBits: number;
  /** Documents in the collection when sampled. */
  documents: number;
  rows: number;
  /** rows × dimension. */
  codes: Int8Array;
}

/** How a switch ended: switched, kept the served codes (the candidate measured no better), its collection deleted, the service stopping, or run by another process. */
export type SwitchOutcome = 'switched' | 'kept' | 'deleted' | 'stopped' | 'elsewhere';

export interface ReencodeStatus {
  targetFingerprint: string;
  /** Documents with codes of the target model. */
  done: number;
  total: number;
  startedAt: string;
  /** Batches that failed and were retried (the re-encoding never gives up on its own). */
  retries: number;
  /** The last failure, until a batch succeeds again. */
  lastError: string | null;
}

export interface SearchRequest {
  collection: string;
  query?: string;
  vector?: readonly number[];
  /**
   * The model (fingerprint or name) the client expects the collection's codes to be from; for a
   * `vector`, the model that computed it (default: the served model, as /encode returns).
   */
  model?: string;
  topK?: number;
  /** A number, or `auto`: the smallest whose measured recall@10 meets the collection's target. */
  rescoreMultiplier?: number | 'auto';
  /** With `auto`: the largest multiplier it may choose (default RESCORE_MULTIPLIER_MAX). */
  maxRescoreMultiplier?: number;
  /** Rescore the first stage's candidates (default), not, or `exact`: rank every document by its int8 code. */
  rescore?: boolean | 'exact';
  /** `hamming` (default) or `asymmetric`: a 4-bit query against the documents' sign bits (first-stage/asymmetric.ts). */
  firstStage?: FirstStage;
  filter?: MetadataFilter;
  /**
   * Whether the query vector may join the collection's recall sample (default true). In-process
   * callers that measure the service against its own estimate (bench:recall-service) keep their
   * held-out queries out of it.
   */
  sampled?: boolean;
}

export interface SearchHit {
  id: string;
  score: number;
  /** null for a document given as a vector without text. */
  text: string | null;
  metadata: Record<string, unknown>;
}

export interface SearchStats {
  documentsScanned: number;
  candidates: number;
  candidatesRescored: number;
  encodeMs: number;
  filterMs: number;
  firstStageMs: number;
  rescoreMs: number;
}

/** How many candidates were rescored and the recall@10 that is estimated to keep (quality/). */
export interface SearchRecall {
  /** The multiplier used (1 without rescoring: the first stage's own top k); null for an exact search. */
  multiplier: number | null;
  /** `request`: the multiplier asked for (or the default 4); `auto`; `exact`: every document ranked. */
  chosenBy: 'request' | 'auto' | 'exact';
  /** Estimated recall@10 at that multiplier and its interval; 1 for an exact search; null before any measurement. */
  estimate: number | null;
  low: number | null;
  high: number | null;
  /** Measurements the estimate rests on, and of what: served queries or documents standing in. */
  measured: number;
  basis: QualityBasis | null;
  /** With auto: the collection's target, and whether the lower bound reached it. */
  target: number | null;
  targetMet: boolean | null;
}

export interface SearchResponse {
  hits: SearchHit[];
  stats: SearchStats;
  recall: SearchRecall;
}

export interface StoredDocumentView {
  id: string;
  /** null for a document given as a vector without text. */
  text: string | null;
  metadata: Record<string, unknown>;
  updatedAt: string;
}

export interface ListDocumentsOptions {
  /** Documents in the page: 1 to LIST_LIMIT_MAX (default LIST_LIMIT_DEFAULT). */
  limit?: number;
  /** The `next` of the previous page (absent: the first page). */
  after?: string;
  /** Only documents whose metadata matches, as a search's filter. */
  filter?: MetadataFilter;
}

/** A page of a collection's documents, in the order they were first written. */
export interface DocumentListPage {
  documents: StoredDocumentView[];
  /** The cursor of the next page (its `after`), or null on the last one. */
  next: string | null;
  /** Documents in the collection (or those the filter matches) now. */
  total: number;
}

/** What a re-encoding needs to know of its target model. */
export interface ReencodeTarget {
  fingerprint: string;
  name: string;
  /** The binary code lengths it offers. */
  codeBits: readonly number[];
}

export interface CheckReport {
  collection: string;
  documents: number;
  indexed: number;
  problems: string[];
}

export interface CreateCollectionOptions {
  /** First-stage code length in bits: one of the served bundle's binary_code_bits (default: the dimension). */
  codeBits?: number;
  /** The recall@10 auto aims for, in (0, 1] (default 0.99). */
  targetRecall?: number;
}

export interface SearchService {
  createCollection(name: string, options?: CreateCollectionOptions): CollectionInfo;
  listCollections(): CollectionInfo[];
  getCollection(name: string): CollectionInfo;
  /** Whether a collection of that name exists. */
  hasCollection(name: string): boolean;
  /**
   * The model a collection's re-encoding was started for and has not finished (running, or
   * interrupted by a restart), or null.
   */
  reencodeTarget(name: string): string | null;
  deleteCollection(name: string): { name: string; documents: number };
  /** Sets the recall@10 auto aims for, in (0, 1]; null restores the default. */
  setTargetRecall(name: string, targetRecall: number | null): CollectionInfo;
  /** Measures the collection's pending sample now at full speed (`qembed quality --measure`); the collection after. */
  measureQuality(name: string): Promise<CollectionInfo>;
  upsertDocuments(collection: string, documents: readonly DocumentInput[], options?: UpsertOptions): Promise<UpsertResult>;
  getDocument(collection: string, id: string): StoredDocumentView;
  /** A page of the collection's documents (QEMBED_INVALID_CURSOR for a cursor it did not give). */
  listDocuments(collection: string, options?: ListDocumentsOptions): DocumentListPage;
  /** Deletes many documents; ids the collection does not hold are reported, not refused. */
  deleteDocuments(collection: string, ids: readonly string[]): { deleted: string[]; notFound: string[] };
  /** Deletes one document; QEMBED_DOCUMENT_NOT_FOUND when the collection does not hold it. */
  deleteDocument(collection: string, id: string): void;
  search(request: SearchRequest): Promise<SearchResponse>;
  /** Loads every collection's index now (at start, to fail fast); returns the documents loaded. */
  loadIndexes(): number;
  /**
   * Re-encodes a collection's stored texts with `target` in the background of the service:
   * the new codes are staged while searches and writes keep using the current ones, then
   * swapped in atomically (one transaction and one index swap, in one tick). Resolves when the
   * collection is bound to `target` (or was deleted meanwhile).
   */
  reencode(collection: string, target: Encoder): Promise<ReencodeOutcome>;
  /** Why the collection cannot be re-encoded for a model, or undefined when it can (checked before an activation). */
  reencodeProblem(collection: string, target: ReencodeTarget): string | undefined;
  /** Stores a seeded random rotation of the collection's code length (fingerprint `rotation-<seed>`): the RaBitQ-style baseline. */
  addRotation(collection: string, seed: number): TransformView;
  /** Stores the transform of a worker's `qembed.transform/v1` artifact for the collection's code length, with the fit's `summary`. */
  addTransformArtifact(collection: string, dir: string, summary: Record<string, unknown>): TransformView;
  /**
   * Switches the collection's first-stage codes to a stored transform (or `first-dims`) in the
   * background: codes recomputed from the stored int8 codes are staged, then (policy `if-better`:
   * only when they measure better than the served codes) swapped in atomically.
   */
  switchTransform(collection: string, target: string, policy: SwitchPolicy): Promise<SwitchOutcome>;
  /** Up to `limit` of the collection's int8 codes, spread over it (what a fit is trained on). */
  codeSample(collection: string, limit: number): Promise<CodeSample>;
  /** Goes on with the switches a restart interrupted; returns their collections. */
  resumeSwitches(onEnd: (collection: string, outcome: SwitchOutcome | Error) => void): string[];
  /** Starts the background recall measurement (a serving process). */
  startBackground(): void;
  /** Stops the re-encodings (they resume from their staged codes at the next start) and the recall measurement (its samples are saved), and waits for them. */
  stopBackground(): Promise<void>;
  /**
   * Compares a collection's in-memory index with its rows (rowids and binary codes, in order),
   * and the rows with their invariants (code lengths, text hashes, counters). With `reencode`,
   * also re-encodes every text and checks that the stored codes are its codes.
   */
  check(collection: string, options?: { reencode?: boolean }): Promise<CheckReport>;
}

export interface SearchServiceDeps {
  /** The storage; search keeps `firstStage` in step with its writes (first-stage/in-step.ts). */
  store: Store;
  /** The first stage over `store`'s codes (createFirstStageIndex(store)). */
  firstStage: FirstStageIndex;
  /** The active encoder: new collections are bound to it. */
  encoder: () => Encoder;
  /**
   * A loaded encoder by fingerprint (the active one, or an older one kept while collections
   * bound to it are re-encoded). Defaults to the active encoder only.
   */
  encoderFor?: (fingerprint: string) => Encoder | undefined;
  /** The recall measurement's sample size and CPU share (default: off). */
  quality?: QualityOptions;
  /** Documents `rescore: "exact"` may scan (default EXACT_MAX_DOCUMENTS_DEFAULT). */
  exactMaxDocuments?: number;
  /** A background recall measurement that failed (it is tried again later). */
  onBackgroundError?: (e: unknown, collection: string) => void;
}
