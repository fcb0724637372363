/**
 * Collections, documents and asymmetric search, composing the encoder, the quantizer, the
 * SQLite store and one in-memory binary index per collection. Knows nothing of HTTP.
 *
 * Consistency: a write encodes first (async), then runs ONE synchronous transaction for the
 * batch and updates the in-memory index in the same tick right after the commit. A search
 * encodes its query first, then runs its first stage, its int8 reads and the assembly of hits
 * synchronously. JavaScript runs one tick at a time, so a search sees each batch entirely or
 * not at all, and the index never holds a code the database does not (or the reverse).
 */
import { createHash } from 'node:crypto';
import type { Encoder } from '../encoder/encoder.js';
import { errors } from '../errors.js';
import { foldQuery, scoreInt8 } from '../quantization/dequantize.js';
import type { Quantizer } from '../quantization/quantize.js';
import { type CollectionRow, type DocumentWrite, type MetadataFilter, type MetadataWrite, StaleWriteError, type Store } from '../store/store.js';
import { asymmetricCosine, queryPlanes } from './asymmetric.js';
import { type BinaryIndex, createBinaryIndex } from './binary-index.js';

export const TOP_K_MAX = 1000;
export const RESCORE_MULTIPLIER_MAX = 20;
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
export const FIRST_STAGES = ['hamming', 'asymmetric'] as const;
export type FirstStage = (typeof FIRST_STAGES)[number];

export interface DocumentInput {
  id: string;
  text: string;
  metadata?: Record<string, unknown>;
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
  createdAt: string;
  documents: number;
  /** Bytes of the stored values (ids, texts, metadata, codes, hashes); SQLite overhead not included. */
  payloadBytes: number;
  /** Bytes of the in-memory index (null while it is not loaded). */
  memoryBytes: number | null;
  index: { documents: number; slots: number; tombstones: number } | null;
  /** A re-encoding for another model in progress (searches use the current codes meanwhile). */
  reencode: ReencodeStatus | null;
  /** Whether its codes are the served model's, and whether they can be searched now. */
  model: ModelState;
}

export interface ModelState {
  /** served: its codes are the served model's; stale: another model's (re-encoding or not). */
  state: 'served' | 'stale';
  /** The served model's fingerprint. */
  servedFingerprint: string;
  /** The model of its codes is loaded: searches and writes work (on the old codes when stale). */
  searchable: boolean;
}

/** How a re-encoding ended: bound to the target, its collection deleted, or the service stopping. */
export type ReencodeOutcome = 'done' | 'deleted' | 'stopped';

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
  rescoreMultiplier?: number;
  rescore?: boolean;
  /** `hamming` (default) or `asymmetric`: a 4-bit query against the documents' sign bits (asymmetric.ts). */
  firstStage?: FirstStage;
  filter?: MetadataFilter;
}

export interface SearchHit {
  id: string;
  score: number;
  text: string;
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

export interface SearchResponse {
  hits: SearchHit[];
  stats: SearchStats;
}

export interface StoredDocumentView {
  id: string;
  text: string;
  metadata: Record<string, unknown>;
  updatedAt: string;
}

export interface CheckReport {
  collection: string;
  documents: number;
  indexed: number;
  problems: string[];
}

export interface SearchService {
  readonly store: Store;
  createCollection(name: string): CollectionInfo;
  listCollections(): CollectionInfo[];
  getCollection(name: string): CollectionInfo;
  deleteCollection(name: string): { name: string; documents: number };
  upsertDocuments(collection: string, documents: readonly DocumentInput[], options?: { truncate?: boolean }): Promise<UpsertResult>;
  getDocument(collection: string, id: string): StoredDocumentView;
  deleteDocuments(collection: string, ids: readonly string[]): { deleted: string[]; notFound: string[] };
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
  /** Stops the re-encodings (they resume from their staged codes at the next start) and waits for them. */
  stopBackground(): Promise<void>;
  /**
   * Compares a collection's in-memory index with its rows (rowids and binary codes, in order),
   * and the rows with their invariants (code lengths, text hashes, counters). With `reencode`,
   * also re-encodes every text and checks that the stored codes are its codes.
   */
  check(collection: string, options?: { reencode?: boolean }): Promise<CheckReport>;
}

export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

const elapsed = (t0: number) => Math.round((performance.now() - t0) * 1000) / 1000;

function checkFilter(filter: MetadataFilter): void {
  const keys = Object.keys(filter);
  if (keys.length > FILTER_MAX_KEYS) throw errors.invalidFilter(`a filter has at most ${FILTER_MAX_KEYS} keys`);
  const keyPattern = new RegExp(FILTER_KEY_PATTERN);
  for (const key of keys) {
    if (!keyPattern.test(key)) throw errors.invalidFilter(`filter key ${JSON.stringify(key)} must be 1 to 128 characters without " or \\`);
    const v = filter[key] as unknown;
    if (v !== null && !['string', 'number', 'boolean'].includes(typeof v)) {
      throw errors.invalidFilter(`filter.${key} must be a string, number, boolean or null (equality on a top-level metadata key)`);
    }
  }
}

/** Nesting depth of a JSON value (an object or list counts one level), without recursion. */
function depthOf(value: unknown): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    deepest = Math.max(deepest, depth);
    if (deepest > METADATA_MAX_DEPTH) return deepest;
    for (const child of Object.values(v as object)) stack.push([child, depth + 1]);
  }
  return deepest;
}

export interface SearchServiceDeps {
  store: Store;
  /** The active encoder: new collections are bound to it. */
  encoder: () => Encoder;
  /**
   * A loaded encoder by fingerprint (the active one, or an older one kept while collections
   * bound to it are re-encoded). Defaults to the active encoder only.
   */
  encoderFor?: (fingerprint: string) => Encoder | undefined;
}

interface Migration {
  target: Encoder;
  /** The index of the staged codes, swapped in when the re-encoding completes. */
  index: BinaryIndex;
  status: ReencodeStatus;
  running: Promise<ReencodeOutcome>;
  /** Set by stop(): the loop ends at its next step. */
  stopped: boolean;
  /** Wakes a loop waiting to retry, so that stop() does not wait for the backoff. */
  wake: () => void;
}

/** Documents re-encoded per step: the batcher runs them in small background batches. */
const REENCODE_STEP = 64;
/** Waits between retries of a failed step: doubling from the first, capped at the second. */
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 30_000;

export function createSearchService(deps: SearchServiceDeps): SearchService {
  const { store } = deps;
  const indexes = new Map<number, BinaryIndex>();
  const migrations = new Map<number, Migration>();

  const collectionOr404 = (name: string): CollectionRow => {
    const c = store.getCollection(name);
    if (!c) throw errors.collectionNotFound(`collection "${name}" does not exist`);
    return c;
  };

  /** The encoder whose codes the collection holds; 409 when that model is not loaded here. */
  const encoderOf = (c: CollectionRow): Encoder => {
    const active = deps.encoder();
    const encoder = c.fingerprint === active.fingerprint ? active : deps.encoderFor?.(c.fingerprint);
    if (encoder) return encoder;
    const m = migrations.get(c.id);
    const what = m
      ? `; it is being re-encoded for ${m.status.targetFingerprint} (${m.status.done} of ${m.status.total} documents done): retry when it completes`
      : `; POST /collections/${c.name}/reencode re-encodes it for the served model`;
    throw errors.modelMismatch(
      `collection "${c.name}" holds codes of model ${c.fingerprint}, which is not loaded here; this service runs model ${active.fingerprint} ` +
        `(${active.bundle.manifest.name})${what}`,
    );
  };

  function loadIndex(c: CollectionRow): BinaryIndex {
    const index = createBinaryIndex(c.dimension / 8, c.document_count, store.iterateBinaryCodes(c.id));
    indexes.set(c.id, index);
    return index;
  }

  const indexOf = (c: CollectionRow): BinaryIndex => indexes.get(c.id) ?? loadIndex(c);

  const info = (c: CollectionRow): CollectionInfo => {
    const index = indexes.get(c.id);
    return {
      name: c.name,
      fingerprint: c.fingerprint,
      dimension: c.dimension,
      createdAt: c.created_at,
      documents: c.document_count,
      payloadBytes: c.payload_bytes,
      memoryBytes: index ? index.memoryBytes() : null,
      index: index ? { documents: index.size(), slots: index.slots(), tombstones: index.tombstones() } : null,
      reencode: migrations.get(c.id)?.status ?? null,
      model: modelState(c),
    };
  };

  const modelState = (c: CollectionRow): ModelState => {
    const served = deps.encoder().fingerprint;
    return {
      state: c.fingerprint === served ? 'served' : 'stale',
      servedFingerprint: served,
      searchable: c.fingerprint === served || deps.encoderFor?.(c.fingerprint) !== undefined,
    };
  };

  const parseMetadata = (json: string) => JSON.parse(json) as Record<string, unknown>;

  async function upsertOnce(name: string, documents: readonly DocumentInput[], truncate: boolean): Promise<UpsertResult> {
    const c = collectionOr404(name);
    const encoder = encoderOf(c);
    const planned = documents.map((d) => ({ ...d, sha: sha256(d.text), metadataJson: JSON.stringify(d.metadata ?? {}) }));
    const stored = store.digests(
      c.id,
      planned.map((d) => d.id),
    );
    const toEncode = planned.filter((d) => stored.get(d.id)?.textSha256 !== d.sha);
    // A full disk is refused before the expensive part.
    store.ensureRoom();
    const metadataOnly: MetadataWrite[] = [];
    let unchanged = 0;
    for (const d of planned) {
      const s = stored.get(d.id);
      if (!s || s.textSha256 !== d.sha) continue;
      // An unchanged document needs no write: the batch's no-op for it is ordered before any
      // write that lands meanwhile. A metadata-only change is not: it must find the text it
      // was planned against (StaleWriteError otherwise, and the batch is planned again).
      if (s.metadata === d.metadataJson) unchanged++;
      else metadataOnly.push({ docId: d.id, metadata: d.metadataJson, expectedTextSha256: d.sha });
    }
    let inputTokens = 0;
    let writes: DocumentWrite[] = [];
    if (toEncode.length > 0) {
      const embedded = await encoder.embed(
        toEncode.map((d) => d.text),
        { inputType: 'document', truncate },
      );
      inputTokens = embedded.tokens.reduce((a, b) => a + b, 0);
      writes = toEncode.map((d, i) => ({
        docId: d.id,
        text: d.text,
        metadata: d.metadataJson,
        textSha256: d.sha,
        binaryCode: encoder.quantizer.toUbinary(embedded.vectors[i]!),
        int8Code: encoder.quantizer.toInt8(embedded.vectors[i]!),
      }));
    }
    // From here to the end: synchronous. Room first, so that applying the commit cannot fail.
    // The collection may have switched models (a re-encoding finished) while we encoded.
    if (store.getCollectionById(c.id)?.fingerprint !== c.fingerprint) throw new StaleWriteError(`collection "${name}" switched models while the batch was being encoded`);
    const index = indexes.get(c.id);
    index?.reserve(writes.length);
    const rowids = store.writeBatch(c.id, writes, metadataOnly);
    if (index) rowids.forEach((rowid, i) => index.upsert(rowid, writes[i]!.binaryCode));
    return { upserted: writes.length, metadataUpdated: metadataOnly.length, unchanged, inputTokens };
  }

  /**
   * Stages codes step by step until none is missing, then swaps them in within one tick. Runs in
   * the encoder's background lane (never refused by the queue bound, never ahead of a request).
   * A failed step (the model thread restarting, the disk full for a while) is retried with a
   * growing wait, forever: a re-encoding ends when it completes, when its collection is
   * deleted, or when the service stops; staged codes survive a restart.
   */
  async function runReencode(collectionId: number, m: Migration): Promise<ReencodeOutcome> {
    const fp = m.target.fingerprint;
    let failures = 0;
    while (!m.stopped) {
      try {
        const c = store.getCollectionById(collectionId);
        if (!c) return 'deleted';
        const pending = store.pendingReencode(collectionId, fp, REENCODE_STEP);
        m.status.total = c.document_count;
        m.status.done = c.document_count - store.countPendingReencode(collectionId, fp);
        if (pending.length === 0) {
          // Nothing is missing at this instant, and nothing can change before the swap: it is synchronous.
          store.finishReencode(collectionId, fp, m.target.dimension);
          indexes.set(collectionId, m.index);
          m.status.done = m.status.total;
          return 'done';
        }
        const { vectors } = await m.target.embed(
          pending.map((p) => p.text),
          { inputType: 'document', truncate: true, background: true },
        );
        if (m.stopped) return 'stopped';
        if (!store.getCollectionById(collectionId)) return 'deleted';
        const rows = pending.map((p, i) => ({
          rowid: p.rowid,
          textSha256: p.textSha256,
          binaryCode: m.target.quantizer.toUbinary(vectors[i]!),
          int8Code: m.target.quantizer.toInt8(vectors[i]!),
        }));
        // Rows come in rowid order, so new documents append to the staged index in order; a row
        // deleted meanwhile is skipped (and never comes back: rowids are not reused).
        m.index.reserve(rows.length);
        const staged = new Set(store.stageCodes(collectionId, fp, rows));
        for (const r of rows) if (staged.has(r.rowid)) m.index.upsert(r.rowid, r.binaryCode);
        failures = 0;
        m.status.lastError = null;
      } catch (e) {
        failures++;
        m.status.retries++;
        m.status.lastError = (e as Error).message;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (failures - 1)));
          timer.unref();
          m.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    }
    return 'stopped';
  }

  function rescore(quantizer: Quantizer, query: Float32Array, rowids: number[], distances: number[]) {
    const folded = foldQuery(query, quantizer);
    const codes = store.int8Codes(rowids);
    const scored = rowids.map((rowid, i) => {
      const code = codes[i];
      if (!code) throw errors.internal(`document rowid ${rowid} is in the index but not in the database`);
      return { rowid, distance: distances[i]!, score: scoreInt8(folded, new Int8Array(code.buffer, code.byteOffset, code.length)) };
    });
    return scored.sort((a, b) => b.score - a.score || a.distance - b.distance || a.rowid - b.rowid);
  }

  async function runSearch(request: SearchRequest, attempt: number): Promise<SearchResponse> {
    const topK = request.topK ?? 10;
    const multiplier = request.rescoreMultiplier ?? 4;
    const doRescore = request.rescore ?? true;
    if (!Number.isInteger(topK) || topK < 1 || topK > TOP_K_MAX) throw errors.invalidTopK(`top_k must be an integer from 1 to ${TOP_K_MAX}`);
    if (!Number.isInteger(multiplier) || multiplier < 1 || multiplier > RESCORE_MULTIPLIER_MAX) {
      throw errors.invalidRescoreMultiplier(`rescore_multiplier must be an integer from 1 to ${RESCORE_MULTIPLIER_MAX}`);
    }
    if ((request.query === undefined) === (request.vector === undefined)) {
      throw errors.invalidRequest('send exactly one of "query" (a text) or "vector" (a float32 query embedding)');
    }
    const filter = request.filter && Object.keys(request.filter).length > 0 ? request.filter : undefined;
    if (filter) checkFilter(filter);
    const c = collectionOr404(request.collection);
    const encoder = encoderOf(c);
    // A vector is only comparable with codes of the model that computed it. Without `model` it
    // is taken to be the served model's (what /encode returns): during a re-encoding, or for a
    // collection of another model, that is not the model of the codes searched.
    const expected = request.model ?? (request.vector !== undefined ? deps.encoder().fingerprint : undefined);
    if (expected !== undefined && expected !== c.fingerprint && expected !== encoder.bundle.manifest.name) {
      throw errors.modelMismatch(
        `collection "${c.name}" holds codes of model ${c.fingerprint} (${encoder.bundle.manifest.name}), ` +
          (request.model !== undefined
            ? `not of the model "${request.model}" this request names`
            : `but the vector is taken to be the served model's (${expected}); send a vector of model ${c.fingerprint} with "model": "${c.fingerprint}", or a query text`),
      );
    }

    const t0 = performance.now();
    let query: Float32Array;
    if (request.vector !== undefined) {
      if (request.vector.length !== c.dimension || !request.vector.every((x) => typeof x === 'number' && Number.isFinite(x))) {
        throw errors.invalidVector(`vector must be ${c.dimension} finite numbers (the model's dimension), got ${request.vector.length} values`);
      }
      query = Float32Array.from(request.vector);
    } else {
      query = (await encoder.embed([request.query!], { inputType: 'query', truncate: true })).vectors[0]!;
    }
    const encodeMs = request.vector !== undefined ? 0 : elapsed(t0);

    // Synchronous from here: one consistent view of the index and the rows.
    const now = store.getCollectionById(c.id);
    if (!now) throw errors.collectionNotFound(`collection "${request.collection}" was deleted during the search`);
    // A re-encoding finished while the query was encoded: encode it again with the new model.
    if (now.fingerprint !== c.fingerprint) {
      if (attempt > 1) throw errors.conflict(`collection "${request.collection}" switched models during the search; retry`);
      return runSearch(request, attempt + 1);
    }
    const index = indexOf(now);
    const t1 = performance.now();
    const restrict = filter ? store.filterRowids(c.id, filter) : undefined;
    const filterMs = filter ? elapsed(t1) : 0;
    const t2 = performance.now();
    const k = doRescore ? topK * multiplier : topK;
    const asymmetric = request.firstStage === 'asymmetric';
    const planes = asymmetric ? queryPlanes(query) : undefined;
    const first =
      index.size() === 0 || restrict?.length === 0
        ? { rowids: [], distances: [], scanned: restrict ? 0 : index.size() }
        : index.search(encoder.quantizer.toUbinary(query), k, restrict, planes);
    const firstStageMs = elapsed(t2);

    const t3 = performance.now();
    let ranked: { rowid: number; score: number }[];
    if (doRescore) {
      ranked = rescore(encoder.quantizer, query, first.rowids, first.distances).slice(0, topK);
    } else {
      const score = asymmetric ? asymmetricCosine(query) : (d: number) => 1 - (2 * d) / c.dimension;
      ranked = first.rowids.map((rowid, i) => ({ rowid, score: score(first.distances[i]!) }));
    }
    const rescoreMs = doRescore ? elapsed(t3) : 0;
    const docs = store.documentsByRowid(ranked.map((r) => r.rowid));
    const hits = ranked.map((r, i) => {
      const d = docs[i];
      if (!d) throw errors.internal(`document rowid ${r.rowid} is in the index but not in the database`);
      return { id: d.docId, score: r.score, text: d.text, metadata: parseMetadata(d.metadata) };
    });
    return {
      hits,
      stats: {
        documentsScanned: first.scanned,
        candidates: first.rowids.length,
        candidatesRescored: doRescore ? first.rowids.length : 0,
        encodeMs,
        filterMs,
        firstStageMs,
        rescoreMs,
      },
    };
}

  const service: SearchService = {
    store,
    createCollection(name) {
      const encoder = deps.encoder();
      const c = store.createCollection(name, encoder.fingerprint, encoder.dimension);
      indexes.set(c.id, createBinaryIndex(c.dimension / 8));
      return info(c);
    },
    listCollections: () => store.listCollections().map(info),
    getCollection: (name) => info(collectionOr404(name)),
    deleteCollection(name) {
      const c = collectionOr404(name);
      store.deleteCollection(c.id);
      indexes.delete(c.id);
      return { name, documents: c.document_count };
    },

    async upsertDocuments(name, documents, options = {}) {
      const seen = new Set<string>();
      for (const d of documents) {
        if (seen.has(d.id)) throw errors.duplicateDocumentId(`document id "${d.id}" appears more than once in the batch`);
        seen.add(d.id);
        if (d.id.includes('\u0000')) throw errors.invalidDocumentId(`document id ${JSON.stringify(d.id)} contains U+0000, which ids cannot hold`);
        if (d.metadata !== undefined && (d.metadata === null || typeof d.metadata !== 'object' || Array.isArray(d.metadata))) {
          throw errors.invalidMetadata(`metadata of document "${d.id}" must be a JSON object`);
        }
        if (d.metadata !== undefined && depthOf(d.metadata) > METADATA_MAX_DEPTH) {
          throw errors.invalidMetadata(`metadata of document "${d.id}" is nested more than ${METADATA_MAX_DEPTH} levels deep`);
        }
      }
      // A document planned as unchanged may change while the others are encoded: plan again.
      for (let attempt = 1; ; attempt++) {
        try {
          return await upsertOnce(name, documents, options.truncate ?? true);
        } catch (e) {
          if (!(e instanceof StaleWriteError) || attempt === 3) {
            if (e instanceof StaleWriteError) throw errors.conflict(`${e.message}; retry the batch`);
            throw e;
          }
        }
      }
    },

    getDocument(name, id) {
      const c = collectionOr404(name);
      const d = store.getDocument(c.id, id);
      if (!d) throw errors.documentNotFound(`collection "${name}" has no document "${id}"`);
      return { id: d.docId, text: d.text, metadata: parseMetadata(d.metadata), updatedAt: d.updatedAt };
    },

    deleteDocuments(name, ids) {
      const c = collectionOr404(name);
      const { rowids, deleted } = store.deleteDocuments(c.id, ids);
      const index = indexes.get(c.id);
      if (index) for (const rowid of rowids) index.remove(rowid);
      const staged = migrations.get(c.id)?.index;
      if (staged) for (const rowid of rowids) staged.remove(rowid);
      const gone = new Set(deleted);
      return { deleted, notFound: ids.filter((id) => !gone.has(id)) };
    },

    search: (request) => runSearch(request, 1),

    loadIndexes() {
      let total = 0;
      for (const c of store.listCollections()) total += indexOf(c).size();
      return total;
    },

    async stopBackground() {
      const running = [...migrations.values()];
      for (const m of running) {
        m.stopped = true;
        m.wake();
      }
      await Promise.allSettled(running.map((m) => m.running));
    },

    reencode(name, target) {
      const c = collectionOr404(name);
      const running = migrations.get(c.id);
      if (running) {
        if (running.target === target) return running.running;
        throw errors.conflict(`collection "${name}" is already being re-encoded for ${running.status.targetFingerprint}`);
      }
      if (c.fingerprint === target.fingerprint) return Promise.resolve('done');
      store.setReencodeTarget(c.id, target.fingerprint);
      store.clearStaging(c.id, target.fingerprint);
      // Codes staged before a restart are reused; a document whose text changed since is staged again.
      const index = createBinaryIndex(target.dimension / 8, c.document_count, store.iterateStagedBinaryCodes(c.id, target.fingerprint));
      const status: ReencodeStatus = {
        targetFingerprint: target.fingerprint,
        done: 0,
        total: c.document_count,
        startedAt: new Date().toISOString(),
        retries: 0,
        lastError: null,
      };
      const migration: Migration = { target, index, status, running: Promise.resolve('done'), stopped: false, wake: () => {} };
      migrations.set(c.id, migration);
      migration.running = runReencode(c.id, migration).finally(() => migrations.delete(c.id));
      return migration.running;
    },

    async check(name, options = {}) {
      const c = collectionOr404(name);
      const problems: string[] = [];
      const problem = (p: string) => {
        if (problems.length < 100) problems.push(p);
      };
      // Synchronous: the index and the rows are compared at one instant.
      const index = indexOf(c);
      const counted = store.recount(c.id);
      if (counted.documents !== c.document_count) problem(`document_count is ${c.document_count} but the collection has ${counted.documents} rows`);
      if (counted.payloadBytes !== c.payload_bytes) problem(`payload_bytes is ${c.payload_bytes} but the rows hold ${counted.payloadBytes}`);
      const entries = index.entries();
      const toRecheck: { id: string; text: string; binary: Buffer; int8: Buffer }[] = [];
      let documents = 0;
      for (const d of store.iterateDocuments(c.id)) {
        documents++;
        if (d.binaryCode.length !== c.dimension / 8) problem(`document "${d.docId}": binary code of ${d.binaryCode.length} bytes, expected ${c.dimension / 8}`);
        if (d.int8Code.length !== c.dimension) problem(`document "${d.docId}": int8 code of ${d.int8Code.length} bytes, expected ${c.dimension}`);
        if (sha256(d.text) !== d.textSha256) problem(`document "${d.docId}": text_sha256 does not match its text`);
        const e = entries.next();
        if (e.done) problem(`document "${d.docId}" (rowid ${d.rowid}) is missing from the index`);
        else if (e.value.rowid !== d.rowid) problem(`index slot holds rowid ${e.value.rowid} where the database has ${d.rowid} ("${d.docId}")`);
        else if (!Buffer.from(e.value.code).equals(d.binaryCode)) problem(`document "${d.docId}": the index holds another binary code than the database`);
        if (options.reencode) toRecheck.push({ id: d.docId, text: d.text, binary: d.binaryCode, int8: d.int8Code });
      }
      for (let e = entries.next(); !e.done; e = entries.next()) problem(`the index holds rowid ${e.value.rowid}, which the database does not`);
      if (index.size() !== documents) problem(`the index holds ${index.size()} documents, the database ${documents}`);

      if (options.reencode && toRecheck.length > 0) {
        const encoder = encoderOf(c);
        for (let i = 0; i < toRecheck.length; i += 64) {
          const batch = toRecheck.slice(i, i + 64);
          const { vectors } = await encoder.embed(
            batch.map((d) => d.text),
            { inputType: 'document', truncate: true },
          );
          batch.forEach((d, j) => {
            const why = codesMismatch(encoder.quantizer, vectors[j]!, d.binary, d.int8);
            if (why) problem(`document "${d.id}": stored codes are not the codes of its text (${why})`);
          });
        }
      }
      return { collection: name, documents, indexed: index.size(), problems };
    },
  };
  return service;
}

/**
 * Why stored codes are not the codes of `vector`, or undefined when they are. Re-encoding in
 * another batch moves values by ~1e-6, which may flip a value sitting on a bucket edge, so a
 * stored code passes when it is the code of some value within ±1e-4 of the new one.
 */
export function codesMismatch(quantizer: Quantizer, vector: Float32Array, binary: Uint8Array, int8: Int8Array | Uint8Array): string | undefined {
  const eps = 1e-4;
  const codes = new Int8Array(int8.buffer, int8.byteOffset, int8.length);
  const lo = quantizer.toInt8(vector.map((x) => x - eps));
  const hi = quantizer.toInt8(vector.map((x) => x + eps));
  for (let i = 0; i < vector.length; i++) {
    if (codes[i]! < lo[i]! || codes[i]! > hi[i]!) return `int8 dimension ${i}: stored ${codes[i]}, expected ${lo[i]}..${hi[i]}`;
    const bit = (binary[i >> 3]! >> (7 - (i & 7))) & 1;
    if (Math.abs(vector[i]!) > eps && bit !== (vector[i]! > 0 ? 1 : 0)) return `binary dimension ${i}`;
  }
  return undefined;
}
