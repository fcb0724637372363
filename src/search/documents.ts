/**
 * Documents: upsert planning (what must be encoded, what only changes metadata, what is
 * unchanged), the write, and reads and deletes by id. The route schemas validate the shape of a
 * batch; the checks here are those a schema cannot express (duplicate ids, nesting depth).
 *
 * Consistency: a write encodes first (async), then runs ONE synchronous transaction for the
 * batch, whose changes the first stage applies in the same tick (first-stage/in-step.ts), so a
 * search sees each batch entirely or not at all.
 */
import { createHash } from 'node:crypto';
import { type Bundle, namesBundle } from '../encoder/bundle.js';
import { errors } from '../errors.js';
import { codeOf } from '../transform/transform.js';
import { type CollectionRow, type DocumentWrite, type MetadataWrite, StaleWriteError, type StoredDocument } from '../store/store.js';
import type { Collections } from './collections.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import {
  type DocumentInput,
  type DocumentListPage,
  LIST_LIMIT_DEFAULT,
  LIST_LIMIT_MAX,
  type ListDocumentsOptions,
  METADATA_MAX_DEPTH,
  type StoredDocumentView,
  type UpsertOptions,
  type UpsertResult,
} from './types.js';

export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * Documents given as vectors store, in place of their text's hash, `vector:` and the hash of
 * the vector's bytes: an upsert of the same vector is unchanged, another one is rewritten, and
 * re-encoding (which encodes texts) knows them apart. Their text, if any, is stored as given.
 */
export const VECTOR_DIGEST = 'vector:';
const vectorDigest = (v: Float32Array) => VECTOR_DIGEST + createHash('sha256').update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)).digest('hex');

/** The stored text of a document: null for one given as a vector alone. */
export const storedText = (text: string, digest: string): string | null => (text === '' && digest.startsWith(VECTOR_DIGEST) ? null : text);

export const parseMetadata = (json: string) => JSON.parse(json) as Record<string, unknown>;

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

/** What the route schema cannot say about a batch: ids repeated within it, metadata nested too deep, a document with neither text nor vector. */
function checkBatch(documents: readonly DocumentInput[]): void {
  const seen = new Set<string>();
  for (const d of documents) {
    if (seen.has(d.id)) throw errors.duplicateDocumentId(`document id "${d.id}" appears more than once in the batch`);
    seen.add(d.id);
    if (d.text === undefined && d.vector === undefined) throw errors.invalidRequest(`document "${d.id}" has neither a text nor a vector`);
    if (d.metadata !== undefined && depthOf(d.metadata) > METADATA_MAX_DEPTH) {
      throw errors.invalidMetadata(`metadata of document "${d.id}" is nested more than ${METADATA_MAX_DEPTH} levels deep`);
    }
  }
}

/** Why `vector` cannot be a query or document of a `dimension`-dimension model, or undefined. */
export function vectorProblem(vector: ArrayLike<number>, dimension: number): string | undefined {
  // A plain loop: Array.prototype.every over a Float32Array took a third of a bulk ingest of vectors.
  let finite = true;
  for (let i = 0; i < vector.length && finite; i++) {
    const x = vector[i];
    finite = typeof x === 'number' && Number.isFinite(x);
  }
  return vector.length === dimension && finite ? undefined : `vector must be ${dimension} finite numbers (the model's dimension), got ${vector.length} values`;
}

/** Vectors must come from the collection's model, with its dimension and finite values. */
function checkVectors(c: CollectionRow, bundle: Bundle, documents: readonly DocumentInput[], model: string | undefined): void {
  const modelName = bundle.manifest.name;
  const withVector = documents.filter((d) => d.vector !== undefined);
  if (withVector.length === 0) return;
  if (model === undefined) {
    throw errors.invalidRequest(`documents with a vector need "model": the fingerprint of the model that computed them (this collection's is ${c.fingerprint})`);
  }
  if (!namesBundle(bundle, model)) {
    throw errors.modelMismatch(`the vectors come from model "${model}", but collection "${c.name}" holds codes of model ${c.fingerprint} (${modelName}); nothing was written`);
  }
  for (const d of withVector) {
    const problem = vectorProblem(d.vector!, c.dimension);
    if (problem) throw errors.invalidVector(`document "${d.id}": a ${problem}`);
  }
}

async function upsertOnce(collections: Collections, name: string, documents: readonly DocumentInput[], options: UpsertOptions): Promise<UpsertResult> {
  const { store } = collections.deps;
  const c = collections.require(name);
  const encoder = collections.encoderOf(c);
  checkVectors(c, encoder.bundle, documents, options.model);
  const planned = documents.map((d) => ({
    ...d,
    text: d.text ?? '',
    sha: d.vector ? vectorDigest(d.vector) : sha256(d.text!),
    metadataJson: JSON.stringify(d.metadata ?? {}),
  }));
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
  const texts = toEncode.filter((d) => !d.vector);
  const vectors = new Map<string, Float32Array>(toEncode.flatMap((d) => (d.vector ? [[d.id, d.vector] as const] : [])));
  if (texts.length > 0) {
    const embedded = await encoder.embed(
      texts.map((d) => d.text),
      { inputType: 'document', truncate: options.truncate ?? true },
    );
    inputTokens = embedded.tokens.reduce((a, b) => a + b, 0);
    texts.forEach((d, i) => vectors.set(d.id, embedded.vectors[i]!));
  }
  // From here to the end: synchronous (the first stage applies the commit in the same tick: first-stage/in-step.ts).
  // The collection may have switched models (a re-encoding finished) while we encoded.
  const now = store.getCollectionById(c.id);
  if (now && now.fingerprint !== c.fingerprint) throw new StaleWriteError(`collection "${name}" switched models while the batch was being encoded`);
  // The first-stage code is the served transform's, read in this tick (the write checks it is still served: another process may switch it).
  const transform = now ? collections.transformOf(now) : undefined;
  const writes: DocumentWrite[] = toEncode.map((d) => {
    const vector = vectors.get(d.id)!;
    return {
      docId: d.id,
      text: d.text,
      metadata: d.metadataJson,
      textSha256: d.sha,
      binaryCode: encoder.quantizer.toUbinary(vector),
      int8Code: encoder.quantizer.toInt8(vector),
      ...(transform && { firstCode: codeOf(transform, vector) }),
    };
  });
  store.writeBatch(c.id, writes, metadataOnly, { fingerprint: c.fingerprint, transform: now?.transform ?? null });
  return { upserted: writes.length, metadataUpdated: metadataOnly.length, unchanged, inputTokens };
}

/** Writes a batch; a document planned as unchanged may change while the others are encoded: plan again. */
export async function upsertDocuments(collections: Collections, name: string, documents: readonly DocumentInput[], options: UpsertOptions = {}): Promise<UpsertResult> {
  checkBatch(documents);
  for (let attempt = 1; ; attempt++) {
    try {
      return await upsertOnce(collections, name, documents, options);
    } catch (e) {
      if (!(e instanceof StaleWriteError)) throw e;
      if (attempt === 3) throw errors.conflict(`${e.message}; retry the batch`);
    }
  }
}

export function getDocument(collections: Collections, name: string, id: string): StoredDocumentView {
  const c = collections.require(name);
  const d = collections.deps.store.getDocument(c.id, id);
  if (!d) throw errors.documentNotFound(`collection "${name}" has no document "${id}"`);
  return viewOf(d);
}

const viewOf = (d: StoredDocument): StoredDocumentView => ({ id: d.docId, text: storedText(d.text, d.textSha256), metadata: parseMetadata(d.metadata), updatedAt: d.updatedAt });

export function listDocuments(collections: Collections, name: string, options: ListDocumentsOptions = {}): DocumentListPage {
  const c = collections.require(name);
  const limit = options.limit ?? LIST_LIMIT_DEFAULT;
  if (!(Number.isInteger(limit) && limit >= 1 && limit <= LIST_LIMIT_MAX)) throw errors.invalidRequest(`limit ${limit}: must be an integer from 1 to ${LIST_LIMIT_MAX}`);
  const afterRowid = options.after === undefined ? 0 : decodeCursor(options.after, c.id);
  // One more than the page: whether there is a next page, without a last page that is empty.
  const { documents, total } = collections.deps.store.listDocuments(c.id, { afterRowid, limit: limit + 1, filter: options.filter });
  const page = documents.slice(0, limit);
  return {
    documents: page.map(viewOf),
    next: documents.length > limit ? encodeCursor(c.id, page[page.length - 1]!.rowid) : null,
    total,
  };
}

export function deleteDocuments(collections: Collections, name: string, ids: readonly string[]): { deleted: string[]; notFound: string[] } {
  const c = collections.require(name);
  const { deleted } = collections.deps.store.deleteDocuments(c.id, ids);
  const gone = new Set(deleted);
  return { deleted, notFound: ids.filter((id) => !gone.has(id)) };
}

export function deleteDocument(collections: Collections, name: string, id: string): void {
  if (deleteDocuments(collections, name, [id]).deleted.length === 0) throw errors.documentNotFound(`collection "${name}" has no document "${id}"`);
}
