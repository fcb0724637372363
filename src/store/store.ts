/**
 * What search needs from storage: the `Store` interface, made of four repositories
 * (collections, documents, re-encode staging, meta) and the storage state, with the rows they
 * speak in. Implementations: sqlite/ (createSqliteStore) and postgres/ (openPostgresStore),
 * one file per repository; composition.ts picks one.
 *
 * The first stage is not here: it is its own component (src/first-stage/), kept in step by
 * what every write returns (`changes`: CodeChange), so a backend only reports what it changed.
 *
 * Contract every implementation keeps: calls are synchronous (search relies on one tick seeing
 * one state: search/query.ts), a batch is written in one transaction (a crash leaves the whole
 * batch or none of it), rowids are stable, increasing and never reused (the first stage is
 * keyed by them and ordered by them), and a write's changes are in commit order.
 */

export interface CollectionRow {
  id: number;
  name: string;
  fingerprint: string;
  dimension: number;
  created_at: string;
  document_count: number;
  payload_bytes: number;
  /** Fingerprint this collection is being re-encoded to, or null. */
  reencode_target: string | null;
  /** Bits of the binary codes its first stage scans (the first dimensions'); null: all of them. */
  code_bits: number | null;
  /** Bumped by every transaction that changes its documents' codes (snapshots of the first stage are keyed by it). */
  generation: number;
  /** The recall@10 its `rescore_multiplier: "auto"` searches aim for; null: the service's default. */
  target_recall: number | null;
  /** Fingerprint of the transform its first-stage codes are made with (transforms table); null: first dims. */
  transform: string | null;
  /** Fingerprint of the transform whose codes are being staged, or null. */
  transform_target: string | null;
}

/** A collection's settings at creation: its first-stage code length, its recall target. */
export interface CollectionSettings {
  /** The first-stage code length when shorter than the dimension (stored codes stay full). */
  codeBits?: number;
  targetRecall?: number;
}

/** Bits of a collection's first-stage codes. */
export const codeBitsOf = (c: CollectionRow): number => c.code_bits ?? c.dimension;

/** A document to write: its codes were computed from `text` by the collection's model, or from the vector it was given as. */
export interface DocumentWrite {
  docId: string;
  text: string;
  /** JSON text of an object. */
  metadata: string;
  textSha256: string;
  binaryCode: Uint8Array;
  int8Code: Int8Array;
  /** Its first-stage code when the collection is served with a transform (codeBits / 8 bytes). */
  firstCode?: Uint8Array;
}

/** The codes a batch was computed for: the write is refused (StaleWriteError) when the collection has switched since. */
export interface WriteBasis {
  fingerprint: string;
  transform: string | null;
}

/** Throws StaleWriteError (collectionNotFound when gone) unless the collection's codes are still those of `basis`. */
export function checkBasis(now: WriteBasis | undefined, basis: WriteBasis): void {
  if (!now) return; // the write itself reports the collection gone
  if (now.fingerprint !== basis.fingerprint) throw new StaleWriteError('the collection switched models while the batch was being encoded');
  if (now.transform !== basis.transform) throw new StaleWriteError('the collection switched first-stage transforms while the batch was being encoded');
}

/** A document whose text (and so codes) must stay as planned; only its metadata may change. */
export interface MetadataWrite {
  docId: string;
  metadata: string;
  /** The write aborts with StaleWriteError when the stored text no longer has this hash. */
  expectedTextSha256: string;
}

/** What a document is stored as, for deciding what an upsert must re-encode. */
export interface StoredDigest {
  textSha256: string;
  metadata: string;
}

export interface StoredDocument {
  rowid: number;
  docId: string;
  /** '' for a document given as a vector without text. */
  text: string;
  metadata: string;
  updatedAt: string;
  /** The hash of its text, or `vector:` and the hash of the vector it was given as. */
  textSha256: string;
}

/** Codes of another model for a stored document, made from the text with this hash. */
export interface StagedCodes {
  rowid: number;
  textSha256: string;
  binaryCode: Uint8Array;
  int8Code: Int8Array;
}

/** Equality filter on top-level metadata keys; values are scalars. */
export type MetadataFilter = Record<string, string | number | boolean | null>;

/** A page of a collection's documents to read: keyset pagination on rowid. */
export interface DocumentPageRequest {
  /** Only documents with a larger rowid (0: from the first). */
  afterRowid: number;
  limit: number;
  /** Only documents whose metadata matches it (absent or empty: every document). */
  filter?: MetadataFilter;
}

/** A page of documents in rowid order, and how many the collection holds (or the filter matches) as the page was read. */
export interface DocumentPage {
  documents: StoredDocument[];
  total: number;
}

/** Thrown inside a write transaction when a planned document changed meanwhile: plan again. */
export class StaleWriteError extends Error {
  override name = 'StaleWriteError';
}

/** Rowids must fit the in-memory index's Uint32Array: about 4.3 billion inserts per database. */
export const MAX_ROWID = 0xffffffff;

/** Collections: a name bound to the model (fingerprint, dimension) of its codes, with counters. */
export interface CollectionRepository {
  createCollection(name: string, fingerprint: string, dimension: number, settings?: CollectionSettings): Changed & { collection: CollectionRow };
  /** Sets the recall target (null: the default); the row after, or undefined when there is no such collection. */
  setTargetRecall(id: number, targetRecall: number | null): CollectionRow | undefined;
  getCollection(name: string): CollectionRow | undefined;
  getCollectionById(id: number): CollectionRow | undefined;
  listCollections(): CollectionRow[];
  /** Deletes the collection and its documents; `existed` false if there was none. */
  deleteCollection(id: number): Changed & { existed: boolean };
  /** COUNT(*) and the summed payload, computed from the rows (the counters' reference). */
  recount(collectionId: number): { documents: number; payloadBytes: number };
}

/** Documents: text, metadata and both codes, addressed by collection and id or by rowid. */
export interface DocumentRepository {
  /** The stored hash and metadata of those of `docIds` that exist. */
  digests(collectionId: number, docIds: readonly string[]): Map<string, StoredDigest>;
  /**
   * Writes a batch in one transaction: `documents` are inserted or replaced in place (an
   * existing id keeps its rowid), `metadataOnly` only get new metadata. Returns the rowids of
   * `documents` in order, their first-stage codes as changes. Throws collectionNotFound if the
   * collection was deleted meanwhile, StaleWriteError if a metadata-only document changed text
   * meanwhile or the collection no longer has the model and transform of `basis` (nothing written).
   */
  writeBatch(collectionId: number, documents: readonly DocumentWrite[], metadataOnly: readonly MetadataWrite[], basis?: WriteBasis): Changed & { rowids: number[] };
  getDocument(collectionId: number, docId: string): StoredDocument | undefined;
  /** Deletes the documents in one transaction; returns the rowids and ids of those that existed. */
  deleteDocuments(collectionId: number, docIds: readonly string[]): Changed & { rowids: number[]; deleted: string[] };
  /** Rowids of the collection's documents whose metadata matches, ascending. */
  filterRowids(collectionId: number, filter: MetadataFilter): number[];
  /**
   * Up to `limit` documents of the collection after `afterRowid` in rowid order (those matching
   * the filter), with their total, read in one snapshot. Keyset, not OFFSET: documents written or
   * deleted between two pages neither shift the next page nor appear in it twice (a rewritten
   * document keeps its rowid, a new one comes after every existing one).
   */
  listDocuments(collectionId: number, page: DocumentPageRequest): DocumentPage;
  /** int8 codes of the given rowids, in their order (undefined for a rowid that is gone). */
  int8Codes(rowids: readonly number[]): (Buffer | undefined)[];
  /**
   * Up to `limit` (rowid, int8 code) pairs of the collection after `afterRowid`, in rowid order:
   * a full int8 scan a page at a time (the exact ranking: src/quality/), holding no statement open
   * between pages, so that writes go on meanwhile.
   */
  int8CodePage(collectionId: number, afterRowid: number, limit: number): { rowids: number[]; codes: Buffer[] };
  /** Id, text and metadata of the given rowids, in their order. */
  documentsByRowid(rowids: readonly number[]): (StoredDocument | undefined)[];
  /** Every (rowid, first-stage code) of a collection in rowid order: what its index is loaded from (the transform's code, else the binary code). */
  iterateBinaryCodes(collectionId: number): IterableIterator<[number, Buffer]>;
  /** Every document with its codes, in rowid order (consistency checks, re-encoding). */
  iterateDocuments(collectionId: number): IterableIterator<StoredDocument & { binaryCode: Buffer; int8Code: Buffer; firstCode: Buffer | null }>;
  /** Documents given as vectors (their codes cannot be computed again from a text). */
  countVectorDocuments(collectionId: number): number;
}

/** Codes of another model staged beside the current ones while a collection is re-encoded. */
export interface ReencodeStaging {
  /**
   * Starts (or resumes) staging codes of model `fingerprint` (codes of `dimension`): marks the
   * collection's re-encode target and drops codes staged for another model; those staged for
   * this one before a restart are kept.
   */
  beginStaging(collectionId: number, fingerprint: string, dimension: number): Changed;
  /** Documents without staged codes of their current text, in rowid order, after `afterRowid` (default 0). */
  pendingReencode(collectionId: number, fingerprint: string, limit: number, afterRowid?: number): { rowid: number; text: string; textSha256: string }[];
  countPendingReencode(collectionId: number, fingerprint: string): number;
  /** Stages codes for rows that still exist; returns the rowids staged (a row deleted meanwhile is skipped). */
  stageCodes(collectionId: number, fingerprint: string, rows: readonly StagedCodes[]): Changed & { rowids: number[] };
  /** Swaps every staged code in, binds the collection to `fingerprint` and clears the staging, in one transaction; the new model's codes are first dims (its transform and transform codes are dropped). */
  finishReencode(collectionId: number, fingerprint: string, dimension: number): Changed;
  /** (rowid, binary code) of the codes staged for `fingerprint`, in rowid order: what the first stage loads a staging index from. */
  stagedBinaryCodes(collectionId: number, fingerprint: string): IterableIterator<[number, Buffer]>;
  /**
   * Takes the right to re-encode the collection in this process: with several API processes
   * on one database, one runs a re-encoding and the others follow; false while another holds it.
   */
  claimReencode(collectionId: number): boolean;
  releaseReencode(collectionId: number): void;
}

/** A transform fitted for a collection, as stored: its arrays and what is known about it. */
export interface StoredTransform {
  collectionId: number;
  fingerprint: string;
  method: string;
  bits: number;
  dimension: number;
  /** float32 [dimension]. */
  mean: Float32Array;
  /** float32 [bits × dimension], row-major. */
  matrix: Float32Array;
  /** JSON object: the fit's summary, the recall measured, the decision. */
  summary: string;
  createdAt: string;
}

/** A transform's row without its arrays (listing). */
export type TransformInfo = Omit<StoredTransform, 'mean' | 'matrix'>;

/** A first-stage code computed for a transform, for a document with this text hash. */
export interface StagedFirstCode {
  rowid: number;
  textSha256: string;
  code: Uint8Array;
}

/**
 * Transforms kept with their collection, and the switch of a collection's first-stage codes to
 * another transform: its codes are staged beside the served ones, then swapped in by one
 * transaction (as a re-encoding's: ReencodeStaging), or dropped.
 */
export interface TransformRepository {
  /** Stores a transform (a second save of the same fingerprint only replaces its summary). */
  saveTransform(t: StoredTransform): void;
  getTransform(collectionId: number, fingerprint: string): StoredTransform | undefined;
  /** The collection's transforms, newest first. */
  listTransforms(collectionId: number): TransformInfo[];
  setTransformSummary(collectionId: number, fingerprint: string, summary: string): void;
  /** Marks `fingerprint` as the collection's staging target and drops codes staged for another. */
  beginTransformStaging(collectionId: number, fingerprint: string): Changed;
  /** Documents without a staged code of their current text, in rowid order after `afterRowid`, with their int8 codes. */
  pendingTransformCodes(collectionId: number, fingerprint: string, limit: number, afterRowid: number): { rowid: number; textSha256: string; int8Code: Buffer }[];
  countPendingTransformCodes(collectionId: number, fingerprint: string): number;
  /** Stages codes of rows that still exist; returns the rowids staged. */
  stageTransformCodes(collectionId: number, fingerprint: string, rows: readonly StagedFirstCode[]): Changed & { rowids: number[] };
  /** (rowid, code) of the codes staged for `fingerprint`, in rowid order (the first stage's staging index). */
  stagedTransformCodes(collectionId: number, fingerprint: string): IterableIterator<[number, Buffer]>;
  /**
   * In one transaction: the staged codes become the documents' first-stage codes and the
   * collection is served with `fingerprint`; or, with null, the collection goes back to first
   * dims (no staging needed: its binary codes are kept). Clears the staging.
   */
  finishTransform(collectionId: number, fingerprint: string | null): Changed;
  /** Drops the staging (a candidate that lost, a cancelled switch). */
  abandonTransform(collectionId: number): Changed;
}

/** Service-wide settings that survive restarts (the model activated at run time). */
export interface MetaRepository {
  getMeta(key: string): string | undefined;
  setMeta(key: string, value: string): void;
}

/** A document's rowid and binary code (stored full length): what the first stage indexes. */
export interface CodeEntry {
  rowid: number;
  code: Uint8Array;
}

/**
 * What a committed write changed of the binary codes, as every write returns it: the first stage
 * (src/first-stage/) applies these in order, right after the commit, for every backend. On a
 * database shared by several processes a write also returns, first, what the others committed
 * before it (read inside its transaction), so that rowids reach the first stage in order.
 */
export type CodeChange =
  | { type: 'created'; collection: CollectionRow }
  /** The collection was deleted, or its codes were replaced as a whole by another process: forget its index (loaded again from the rows if still used). */
  | { type: 'dropped'; collectionId: number }
  /** Documents inserted or rewritten (an existing rowid keeps its place). */
  | { type: 'written'; collectionId: number; entries: readonly CodeEntry[] }
  | { type: 'deleted'; collectionId: number; rowids: readonly number[] }
  /** Staging began for model `fingerprint`, or (`transform`) for that transform's first-stage codes; codes staged before a restart are read from storage. */
  | { type: 'staging'; collectionId: number; fingerprint: string; transform?: boolean }
  /** The staging was dropped. */
  | { type: 'unstaged'; collectionId: number }
  | { type: 'staged'; collectionId: number; entries: readonly CodeEntry[] }
  /** The staged codes became the collection's codes. */
  | { type: 'swapped'; collectionId: number };

/** What every write returns besides its own answer. */
export interface Changed {
  changes: CodeChange[];
}

/** A first stage's answer, computed in memory (src/first-stage/) or by the database itself. */
export interface FirstStageResult {
  /** Rowids of the nearest documents, nearest first. */
  rowids: number[];
  /** Their distances. */
  distances: number[];
  /** Live documents whose distance was computed. */
  scanned: number;
}

/**
 * What storage offers the first stage beyond the rows and the changes its writes return. All
 * optional: SQLite gives a snapshot folder, PostgreSQL the changes of other processes and, when
 * QEMBED_PG_FIRST_STAGE asks for it, a Hamming first stage in SQL.
 */
export interface FirstStageSupport {
  /**
   * The changes other processes committed that this one has not been given yet, oldest first
   * (codes read now). Present only where several processes write one database.
   */
  othersChanges?(): CodeChange[];
  /** Where the first stage may keep snapshots of its indexes (beside the database file: valid for it only). */
  readonly snapshotDir?: string;
  /**
   * The exact or approximate Hamming top k computed by the database (PostgreSQL `exact`, `hnsw`),
   * used for Hamming queries instead of an in-memory index. `code` holds the collection's code length.
   */
  nearestInDatabase?(collectionId: number, code: Uint8Array, k: number, rowids?: readonly number[]): FirstStageResult;
}

/** The storage medium itself: size and whether it has room. */
export interface StorageState {
  /** Bytes of the whole database (all collections): SQLite's page count, PostgreSQL's database size. */
  databaseBytes(): number;
  /** Throws 507 QEMBED_STORAGE_FULL while the database found no room for its last write (storage.ts). */
  ensureRoom(): void;
  /** A small write, for GET /health: throws when the database does not accept writes. */
  probeWritable(): void;
  /** Whether the last write found the storage full (storage.ts). */
  storageStatus(): { full: boolean; since: string | null; message: string | null };
}

export interface Store extends CollectionRepository, DocumentRepository, ReencodeStaging, TransformRepository, MetaRepository, StorageState, FirstStageSupport {}
