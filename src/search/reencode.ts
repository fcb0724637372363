/**
 * Re-encoding a collection for another model from its stored texts, in the background of the
 * service: the new codes are staged (store: ReencodeStaging) while searches and writes keep
 * using the current ones, then swapped in atomically (one synchronous store call: the rows and
 * the first stage in one tick). Staged codes survive a restart, so a re-encoding resumes where it stopped.
 */
import { supportedCodeBits } from '../encoder/bundle.js';
import type { Encoder } from '../encoder/encoder.js';
import { errors } from '../errors.js';
import { type CollectionRow, codeBitsOf, type Store } from '../store/store.js';
import { retryWait, stopAll } from './background.js';
import type { Collections, Migration } from './collections.js';
import type { ReencodeOutcome, ReencodeStatus, ReencodeTarget } from './types.js';

/** Documents re-encoded per step: the batcher runs them in small background batches. */
const REENCODE_STEP = 64;

/**
 * Stages codes step by step until none is missing, then swaps them in within one tick. Runs in
 * the encoder's background lane (never refused by the queue bound, never ahead of a request).
 * A failed step (the model thread restarting, the disk full for a while) is retried with a
 * growing wait, forever: a re-encoding ends when it completes, when its collection is
 * deleted, or when the service stops; staged codes survive a restart.
 */
async function run(collections: Collections, collectionId: number, m: Migration): Promise<ReencodeOutcome> {
  const { store } = collections.deps;
  const fp = m.target.fingerprint;
  let failures = 0;
  // Passes over the collection in rowid order, each row read once a pass: the cursor is the last
  // rowid staged (or skipped). When a pass reaches the end, another starts from 0 to catch rows
  // whose text changed behind the cursor; a pass from 0 that finds nothing means nothing is
  // missing. Counting what is left is a full scan, so it is done once a pass and kept up to
  // date in between. (Reading from 0 every step made a re-encoding quadratic in the size.)
  let cursor = 0;
  let left = -1;
  while (!m.stopped) {
    try {
      const c = store.getCollectionById(collectionId);
      if (!c) return 'deleted';
      if (left < 0) left = store.countPendingReencode(collectionId, fp);
      const pending = store.pendingReencode(collectionId, fp, REENCODE_STEP, cursor);
      m.status.total = c.document_count;
      m.status.done = Math.max(0, c.document_count - left);
      if (pending.length === 0) {
        if (cursor !== 0) {
          cursor = 0;
          left = -1;
          continue;
        }
        // Nothing is missing at this instant, and nothing can change before the swap: it is synchronous.
        store.finishReencode(collectionId, fp, m.target.dimension);
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
      // A row deleted meanwhile is skipped by the store (and never comes back: rowids are not reused).
      left -= store.stageCodes(collectionId, fp, rows).rowids.length;
      cursor = pending.at(-1)!.rowid;
      failures = 0;
      m.status.lastError = null;
    } catch (e) {
      await retryWait(m, e, ++failures);
    }
  }
  return 'stopped';
}

/** Why collection `c` cannot be re-encoded for `target`, or undefined when it can. */
export function reencodeProblem(store: Store, c: CollectionRow, target: ReencodeTarget): string | undefined {
  const bits = codeBitsOf(c);
  if (!target.codeBits.includes(bits)) {
    return `collection "${c.name}" scans ${bits}-bit codes, which model ${target.fingerprint} (${target.name}) does not offer (its lengths: ${target.codeBits.join(', ')})`;
  }
  const vectors = store.countVectorDocuments(c.id);
  if (vectors > 0) {
    return `collection "${c.name}" holds ${vectors} documents given as vectors of model ${c.fingerprint}; re-encoding encodes texts, so it cannot compute their codes for ${target.fingerprint}: upsert vectors of the new model into a new collection (or delete these documents) first`;
  }
  return undefined;
}

export function reencode(collections: Collections, name: string, target: Encoder): Promise<ReencodeOutcome> {
  const { store } = collections.deps;
  const { migrations } = collections;
  const c = collections.require(name);
  const running = migrations.get(c.id);
  if (running) {
    if (running.target === target) return running.running;
    throw errors.conflict(`collection "${name}" is already being re-encoded for ${running.status.targetFingerprint}`);
  }
  if (c.fingerprint === target.fingerprint) return Promise.resolve('done');
  const problem = reencodeProblem(store, c, { fingerprint: target.fingerprint, name: target.bundle.manifest.name, codeBits: supportedCodeBits(target.bundle.manifest) });
  if (problem) throw errors.conflict(problem);
  if (!store.claimReencode(c.id)) return Promise.resolve('elsewhere');
  // Codes staged before a restart are reused; a document whose text changed since is staged again.
  try {
    store.beginStaging(c.id, target.fingerprint, target.dimension);
  } catch (e) {
    store.releaseReencode(c.id);
    throw e;
  }
  const status: ReencodeStatus = {
    targetFingerprint: target.fingerprint,
    done: 0,
    total: c.document_count,
    startedAt: new Date().toISOString(),
    retries: 0,
    lastError: null,
  };
  const migration: Migration = { target, status, running: Promise.resolve('done'), stopped: false, wake: () => {} };
  migrations.set(c.id, migration);
  migration.running = run(collections, c.id, migration).finally(() => {
    migrations.delete(c.id);
    store.releaseReencode(c.id);
  });
  return migration.running;
}

/** Stops the re-encodings (they resume from their staged codes at the next start) and waits for them. */
export const stopReencodes = (collections: Collections): Promise<void> => stopAll(collections.migrations.values());
