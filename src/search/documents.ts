/**
 * Documents: upsert planning (what must be encoded, what only changes metadata, what is
 * unchanged), the write, and reads and deletes by id. The route schemas validate the shape of a
 * batch; the checks here are those a schema cannot express (duplicate ids, nesting depth).
 *
 * Consistency: a write encodes first (async), then runs ONE synchronous transaction for the
 * batch, after which the store's first stage has it in the same tick, so a search sees each
 * batch entirely or not at all.
 */
import { createHash } from 'node:crypto';
import { errors } from '../errors.js';
import { type DocumentWrite, type MetadataWrite, StaleWriteError } from '../store/store.js';
import type { Collections } from './collections.js';
import { type DocumentInput, METADATA_MAX_DEPTH, type StoredDocumentView, type UpsertResult } from './types.js';

export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

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

/** What the route schema cannot say about a batch: ids repeated within it, metadata nested too deep. */
function checkBatch(documents: readonly DocumentInput[]): void {
  const seen = new Set<string>();
  for (const d of documents) {
    if (seen.has(d.id)) throw errors.duplicateDocumentId(`document id "${d.id}" appears more than once in the batch`);
    seen.add(d.id);
    if (d.metadata !== undefined && depthOf(d.metadata) > METADATA_MAX_DEPTH) {
      throw errors.invalidMetadata(`metadata of document "${d.id}" is nested more than ${METADATA_MAX_DEPTH} levels deep`);
    }
  }
}

async function upsertOnce(collections: Collections, name: string, documents: readonly DocumentInput[], truncate: boolean): Promise<UpsertResult> {
  const { store } = collections.deps;
  const c = collections.require(name);
  const encoder = collections.encoderOf(c);
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
  // From here to the end: synchronous (the store applies the commit to its first stage in the same tick).
  // The collection may have switched models (a re-encoding finished) while we encoded.
  if (store.getCollectionById(c.id)?.fingerprint !== c.fingerprint) throw new StaleWriteError(`collection "${name}" switched models while the batch was being encoded`);
  store.writeBatch(c.id, writes, metadataOnly);
  return { upserted: writes.length, metadataUpdated: metadataOnly.length, unchanged, inputTokens };
}

/** Writes a batch; a document planned as unchanged may change while the others are encoded: plan again. */
export async function upsertDocuments(collections: Collections, name: string, documents: readonly DocumentInput[], truncate = true): Promise<UpsertResult> {
  checkBatch(documents);
  for (let attempt = 1; ; attempt++) {
    try {
      return await upsertOnce(collections, name, documents, truncate);
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
  return { id: d.docId, text: d.text, metadata: parseMetadata(d.metadata), updatedAt: d.updatedAt };
}

export function deleteDocuments(collections: Collections, name: string, ids: readonly string[]): { deleted: string[]; notFound: string[] } {
  const c = collections.require(name);
  const { deleted } = collections.deps.store.deleteDocuments(c.id, ids);
  const gone = new Set(deleted);
  return { deleted, notFound: ids.filter((id) => !gone.has(id)) };
}
