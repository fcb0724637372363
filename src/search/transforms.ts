/**
 * A collection's first-stage transforms (src/transform/): storing them with the collection, and
 * switching its first-stage codes from one to another in the background of the service.
 *
 * A switch computes every document's code from its stored int8 code (int8Coder: no model run),
 * stages them beside the served ones (store: TransformRepository) while searches and writes keep
 * using the served codes, then swaps them in with one transaction and one index swap, in one
 * tick: a search never sees two transforms. Staged codes survive a restart (the collection's
 * transform_target says what was being staged; resumeSwitches goes on). With the `if-better`
 * policy the candidate is measured first, against the served codes on the same queries (the
 * collection's sampled served queries, else documents standing in for them), and swapped in only
 * when it keeps more of the exact int8 top-10; otherwise its staging is dropped. Both figures
 * are kept in the transform's summary.
 *
 * Going back to first dims needs no staging: the model's binary codes are kept beside a
 * transform's (store: first_code), so that is one transaction.
 */
import { errors } from '../errors.js';
import { FIRST_STAGE_TYPES, type FirstStageType } from '../first-stage/query.js';
import { NOT_FOUND } from '../quality/estimate.js';
import { codesKey, type MeasuredQuery, measureCodes, type Pace, servedCodes } from '../quality/measure.js';
import { drawDocuments } from '../quality/stand-ins.js';
import { type CollectionRow, codeBitsOf, type StoredTransform } from '../store/store.js';
import { loadTransform, readTransformManifest } from '../transform/artifact.js';
import { type CodeTransform, int8Coder, seededRotation, TransformError } from '../transform/transform.js';
import { retryWait, sleep, stopAll } from './background.js';
import type { Collections, TransformSwitch } from './collections.js';
import { transformView } from './transform-view.js';
import type { CodeSample, SwitchOutcome, SwitchPolicy, TransformSwitchStatus, TransformView } from './types.js';

/** The name that stands for first dims where a transform's fingerprint is expected. */
export const FIRST_DIMS = 'first-dims';
/** Documents whose codes are computed and staged per step (~10-30 ms of work at 128 bits). */
const STEP = 2048;
/** Served queries from which the comparison uses them rather than documents. */
const MIN_SERVED_QUERIES = 50;
/** Documents drawn as queries when too few served queries were sampled. */
const STAND_IN_QUERIES = 256;
/** The comparison's figure: recall@10 of the first stage's top 10 × this (the default multiplier's candidates: top 40). */
export const COMPARED_MULTIPLIER = 4;
/** Share of one core the comparison's scan takes (it runs in the background, in slices). */
const COMPARISON_CPU_SHARE = 0.25;

class Stopped extends Error {}

const parseSummary = (json: string): Record<string, unknown> => JSON.parse(json) as Record<string, unknown>;
const merged = (t: { summary: string }, more: Record<string, unknown>) => JSON.stringify({ ...parseSummary(t.summary), ...more });

/** A transform stored for `c` as its view. */
function viewOf(collections: Collections, c: CollectionRow, fingerprint: string): TransformView {
  return transformView(collections.deps.store, c, null).available.find((t) => t.fingerprint === fingerprint)!;
}

function store(collections: Collections, c: CollectionRow, t: CodeTransform, summary: Record<string, unknown>): TransformView {
  const stored: StoredTransform = {
    collectionId: c.id,
    fingerprint: t.fingerprint,
    method: t.method,
    bits: t.bits,
    dimension: t.dimension,
    mean: t.mean,
    matrix: t.matrix!,
    summary: JSON.stringify(summary),
    createdAt: new Date().toISOString(),
  };
  const existing = collections.deps.store.getTransform(c.id, t.fingerprint);
  if (existing) collections.deps.store.setTransformSummary(c.id, t.fingerprint, merged(existing, summary));
  else collections.deps.store.saveTransform(stored);
  return viewOf(collections, c, t.fingerprint);
}

/** Stores a seeded random rotation for the collection's code length (the RaBitQ-style baseline); fingerprint `rotation-<seed>`. */
export function addRotation(collections: Collections, name: string, seed: number): TransformView {
  if (!Number.isInteger(seed) || seed < 1 || seed > 0xffffffff) throw errors.invalidTransform(`seed ${seed}: a rotation's seed is an integer from 1 to 4294967295`);
  const c = collections.require(name);
  return store(collections, c, seededRotation(c.dimension, codeBitsOf(c), seed), { source: 'rotation', seed });
}

/**
 * Stores the transform of a `qembed.transform/v1` artifact (the worker's fit) for the
 * collection's code length, with `summary` (the fit's record). The artifact must be of the
 * collection's model and dimension and hold its code length.
 */
export function addArtifact(collections: Collections, name: string, dir: string, summary: Record<string, unknown>): TransformView {
  const c = collections.require(name);
  const bits = codeBitsOf(c);
  let manifest: ReturnType<typeof readTransformManifest>;
  let t: CodeTransform;
  try {
    manifest = readTransformManifest(dir);
    if (manifest.model !== null && manifest.model !== c.fingerprint) {
      throw errors.transformMismatch(`the transform was fitted on codes of model ${manifest.model}; collection "${name}" holds codes of ${c.fingerprint}`);
    }
    if (manifest.dimension !== c.dimension) throw errors.transformMismatch(`a transform of ${manifest.dimension} dimensions for collection "${name}" of ${c.dimension}`);
    if (!Object.hasOwn(manifest.lengths, String(bits))) {
      throw errors.transformMismatch(`the transform makes codes of ${Object.keys(manifest.lengths).join(', ')} bits; collection "${name}" scans ${bits}-bit codes`);
    }
    t = loadTransform(dir, bits);
  } catch (e) {
    if (e instanceof TransformError) throw errors.invalidTransform(`the transform artifact in ${dir} cannot be read: ${e.message}`);
    throw e;
  }
  return store(collections, c, t, { source: 'fit', ...summary, sample: manifest.sample, training: manifest.training, evaluation: manifest.evaluation });
}

/** Recall@10 at COMPARED_MULTIPLIER per first stage, from the positions of each query's exact top 10. */
function recallAt(measurements: { positions: Record<FirstStageType, Uint16Array> }[]): Record<FirstStageType, number> {
  const depth = 10 * COMPARED_MULTIPLIER;
  return Object.fromEntries(
    FIRST_STAGE_TYPES.map((type) => {
      let kept = 0;
      let wanted = 0;
      for (const m of measurements) {
        const p = m.positions[type];
        wanted += p.length;
        for (const at of p) if (at !== NOT_FOUND && at < depth) kept++;
      }
      return [type, wanted === 0 ? 0 : kept / wanted];
    }),
  ) as Record<FirstStageType, number>;
}

/** The candidate's recall against the served codes', on the same queries in one scan; undefined when the collection changed codes or was deleted meanwhile. */
async function compare(collections: Collections, c: CollectionRow, candidate: CodeTransform, pace: Pace) {
  const { store: rows, firstStage } = collections.deps;
  const quantizer = collections.encoderOf(c).quantizer;
  const served = collections.quality.servedQueries(c);
  const basis = served.length >= MIN_SERVED_QUERIES ? 'queries' : 'documents';
  const queries: MeasuredQuery[] = basis === 'queries' ? served.map((vector) => ({ vector })) : drawDocuments(rows, c.id, STAND_IN_QUERIES, quantizer, new Set());
  const transform = collections.transformOf(c);
  const target = { store: rows, firstStage, collection: c, quantizer, codes: codesKey(c), ...(transform && { transform }) };
  const staged = { key: `${c.fingerprint}+${candidate.fingerprint}`, nearest: (q: Parameters<typeof firstStage.nearestStaged>[1], k: number) => firstStage.nearestStaged(c.id, q, k), transform: candidate };
  const [now, next] = await measureCodes(target, queries, [servedCodes(target), staged], pace);
  if (!now || now.length === 0) return undefined;
  const servedRecall = recallAt(now);
  const candidateRecall = recallAt(next!);
  const mean = (r: Record<FirstStageType, number>) => FIRST_STAGE_TYPES.reduce((a, t) => a + r[t], 0) / FIRST_STAGE_TYPES.length;
  return {
    at: new Date().toISOString(),
    basis,
    queries: now.length,
    multiplier: COMPARED_MULTIPLIER,
    served: { transform: c.transform ?? FIRST_DIMS, recall: servedRecall },
    candidate: { transform: candidate.fingerprint, recall: candidateRecall },
    better: mean(candidateRecall) > mean(servedRecall),
  };
}

/**
 * Stages the candidate's codes until none is missing, then runs `complete` in the same tick (so
 * that nothing is written between the check and it). Passes over the collection in rowid order
 * with a cursor, as a re-encoding does (reencode.ts).
 */
async function stageAll(collections: Collections, id: number, sw: TransformSwitch, t: CodeTransform, complete: () => void): Promise<'staged' | 'deleted' | 'stopped'> {
  const { store: rows } = collections.deps;
  let cursor = 0;
  let left = -1;
  let failures = 0;
  const bytes = t.bits / 8;
  let coder: ReturnType<typeof int8Coder> | undefined;
  while (!sw.stopped) {
    try {
      const c = rows.getCollectionById(id);
      if (!c) return 'deleted';
      coder ??= int8Coder(t, collections.encoderOf(c).quantizer);
      if (left < 0) left = rows.countPendingTransformCodes(id, t.fingerprint);
      sw.status.total = c.document_count;
      sw.status.done = Math.max(0, c.document_count - left);
      const pending = rows.pendingTransformCodes(id, t.fingerprint, STEP, cursor);
      if (pending.length === 0) {
        if (cursor !== 0) {
          cursor = 0;
          left = -1;
          continue;
        }
        complete();
        sw.status.done = sw.status.total;
        return 'staged';
      }
      const d = t.dimension;
      const codes = new Int8Array(pending.length * d);
      pending.forEach((p, i) => codes.set(new Int8Array(p.int8Code.buffer, p.int8Code.byteOffset, d), i * d));
      const out = new Uint8Array(pending.length * bytes);
      coder.encode(codes, pending.length, out);
      const staged = pending.map((p, i) => ({ rowid: p.rowid, textSha256: p.textSha256, code: out.subarray(i * bytes, (i + 1) * bytes) }));
      left -= rows.stageTransformCodes(id, t.fingerprint, staged).rowids.length;
      cursor = pending.at(-1)!.rowid;
      failures = 0;
      sw.status.lastError = null;
      await new Promise<void>((resolve) => setImmediate(resolve));
    } catch (e) {
      if (e instanceof Stopped) return 'stopped';
      await retryWait(sw, e, ++failures);
    }
  }
  return 'stopped';
}

/** Slices of the comparison's scan, each followed by a wait that keeps them to COMPARISON_CPU_SHARE of the time. */
function pacer(sw: TransformSwitch): Pace {
  return async (work) => {
    if (sw.stopped) throw new Stopped();
    const started = performance.now();
    const result = work();
    await sleep(sw, ((performance.now() - started) * (1 - COMPARISON_CPU_SHARE)) / COMPARISON_CPU_SHARE);
    if (sw.stopped) throw new Stopped();
    return result;
  };
}

async function run(collections: Collections, id: number, sw: TransformSwitch, t: CodeTransform): Promise<SwitchOutcome> {
  const { store: rows } = collections.deps;
  const finish = () => rows.finishTransform(id, t.fingerprint);
  if (sw.status.policy === 'always') {
    const staged = await stageAll(collections, id, sw, t, finish);
    return staged === 'staged' ? 'switched' : staged;
  }
  const staged = await stageAll(collections, id, sw, t, () => {});
  if (staged !== 'staged') return staged;
  sw.status.phase = 'measuring';
  let failures = 0;
  for (;;) {
    try {
      const c = rows.getCollectionById(id);
      if (!c) return 'deleted';
      const comparison = await compare(collections, c, t, pacer(sw));
      if (!comparison) {
        // The collection switched models (a re-encoding) or was deleted while measured.
        return rows.getCollectionById(id) ? 'stopped' : 'deleted';
      }
      const stored = rows.getTransform(id, t.fingerprint);
      if (stored) rows.setTransformSummary(id, t.fingerprint, merged(stored, { comparison: { ...comparison, decision: comparison.better ? 'switched' : 'kept' } }));
      if (!comparison.better) {
        rows.abandonTransform(id);
        return 'kept';
      }
      break;
    } catch (e) {
      if (e instanceof Stopped || sw.stopped) return 'stopped';
      await retryWait(sw, e, ++failures);
    }
  }
  sw.status.phase = 'staging';
  // Documents written while the candidate was measured are staged, then the swap.
  const caught = await stageAll(collections, id, sw, t, finish);
  return caught === 'staged' ? 'switched' : caught;
}

/** Why `c` cannot switch its first-stage codes now, or undefined. */
function switchProblem(collections: Collections, c: CollectionRow): string | undefined {
  const m = collections.migrations.get(c.id);
  if (m || c.reencode_target !== null) return `collection "${c.name}" is being re-encoded for ${m?.status.targetFingerprint ?? c.reencode_target}: a transform can be switched once it completes`;
  return undefined;
}

/**
 * Switches the collection's first-stage codes to the stored transform `target` (or FIRST_DIMS)
 * in the background; resolves when it is served, kept out (`if-better` and it measured no
 * better), or the switch ended otherwise. A switch to the transform already being staged joins
 * it; to another one while a switch runs, 409.
 */
export function switchTransform(collections: Collections, name: string, target: string, policy: SwitchPolicy): Promise<SwitchOutcome> {
  const { store: rows } = collections.deps;
  const c = collections.require(name);
  const running = collections.switches.get(c.id);
  if (running) {
    if (running.status.target === target) return running.running;
    throw errors.conflict(`collection "${name}" is switching its first-stage codes to ${running.status.target}; wait for it to end (GET /collections/${name})`);
  }
  const problem = switchProblem(collections, c);
  if (problem) throw errors.conflict(problem);
  if (target === FIRST_DIMS) {
    if (c.transform !== null) rows.finishTransform(c.id, null);
    return Promise.resolve('switched');
  }
  const t = collections.transform(c, target);
  if (t.bits !== codeBitsOf(c) || t.dimension !== c.dimension) {
    throw errors.transformMismatch(`transform ${target} makes ${t.bits}-bit codes of ${t.dimension} dimensions; collection "${name}" scans ${codeBitsOf(c)}-bit codes of ${c.dimension}`);
  }
  collections.encoderOf(c); // its codes' model must be loaded: it dequantizes the int8 codes
  if (c.transform === target) return Promise.resolve('switched');
  if (!rows.claimReencode(c.id)) return Promise.resolve('elsewhere');
  try {
    rows.beginTransformStaging(c.id, target);
    const stored = rows.getTransform(c.id, target);
    if (stored) rows.setTransformSummary(c.id, target, merged(stored, { switch: { policy, requestedAt: new Date().toISOString() } }));
  } catch (e) {
    rows.releaseReencode(c.id);
    throw e;
  }
  const status: TransformSwitchStatus = { target, policy, phase: 'staging', done: 0, total: c.document_count, startedAt: new Date().toISOString(), retries: 0, lastError: null };
  const sw: TransformSwitch = { status, running: Promise.resolve('switched'), stopped: false, wake: () => {} };
  collections.switches.set(c.id, sw);
  sw.running = run(collections, c.id, sw, t).finally(() => {
    collections.switches.delete(c.id);
    rows.releaseReencode(c.id);
  });
  return sw.running;
}

/** Goes on with the switches a restart interrupted (their staged codes are kept); returns the collections'. */
export function resumeSwitches(collections: Collections, onEnd: (collection: string, outcome: SwitchOutcome | Error) => void): string[] {
  const resumed: string[] = [];
  for (const c of collections.deps.store.listCollections()) {
    if (c.transform_target === null || c.reencode_target !== null) continue;
    const stored = collections.deps.store.getTransform(c.id, c.transform_target);
    const asked = stored && (parseSummary(stored.summary).switch as { policy?: SwitchPolicy } | undefined)?.policy;
    try {
      switchTransform(collections, c.name, c.transform_target, asked ?? 'if-better').then(
        (outcome) => onEnd(c.name, outcome),
        (e: Error) => onEnd(c.name, e),
      );
      resumed.push(c.name);
    } catch (e) {
      onEnd(c.name, e as Error);
    }
  }
  return resumed;
}

/**
 * Up to `limit` of the collection's stored int8 codes, every k-th in rowid order (k = ⌈N / limit⌉:
 * spread over the collection's history), read a page at a time between turns of the event loop:
 * what a fit is trained on (the worker reads them with the model's calibration ranges).
 */
export async function codeSample(collections: Collections, name: string, limit: number): Promise<CodeSample> {
  const c = collections.require(name);
  const encoder = collections.encoderOf(c);
  const every = Math.max(1, Math.ceil(c.document_count / limit));
  const d = c.dimension;
  const codes = new Int8Array(Math.min(limit, c.document_count) * d);
  let rows = 0;
  let seen = 0;
  for (let after = 0; rows * d < codes.length; ) {
    const page = collections.deps.store.int8CodePage(c.id, after, 4096);
    if (page.rowids.length === 0) break;
    for (const code of page.codes) {
      if (seen++ % every === 0 && rows * d < codes.length) codes.set(new Int8Array(code.buffer, code.byteOffset, d), rows++ * d);
    }
    after = page.rowids.at(-1)!;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return { collectionId: c.id, fingerprint: c.fingerprint, bundleDir: encoder.bundle.dir, dimension: d, codeBits: codeBitsOf(c), documents: c.document_count, rows, codes: codes.subarray(0, rows * d) };
}

/** Stops the collection's switch, if one runs, and drops its staging (a re-encoding replaces the codes anyway). */
export function abandonSwitch(collections: Collections, c: CollectionRow): void {
  const sw = collections.switches.get(c.id);
  if (sw) {
    sw.stopped = true;
    sw.wake();
  }
  if (sw || c.transform_target !== null) collections.deps.store.abandonTransform(c.id);
}

/** Stops the switches (they resume from their staged codes at the next start) and waits for them. */
export const stopSwitches = (collections: Collections): Promise<void> => stopAll(collections.switches.values());
