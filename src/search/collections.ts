/**
 * The collections search works on: their rows, the re-encodings under way, which loaded
 * encoder holds each collection's codes, and the recall measured on each (quality/). The other
 * search modules share this state.
 */
import type { Encoder } from '../encoder/encoder.js';
import { errors } from '../errors.js';
import { createQualityMonitor, type QualityMonitor } from '../quality/monitor.js';
import { type CollectionRow, codeBitsOf } from '../store/store.js';
import { type CodeTransform, linearTransform, type TransformMethod } from '../transform/transform.js';
import { transformView } from './transform-view.js';
import type { CollectionInfo, ModelState, ReencodeOutcome, ReencodeStatus, SearchServiceDeps, SwitchOutcome, TransformSwitchStatus } from './types.js';

/** A switch of a collection's first-stage codes under way (transforms.ts runs it). */
export interface TransformSwitch {
  status: TransformSwitchStatus;
  running: Promise<SwitchOutcome>;
  stopped: boolean;
  wake: () => void;
}

/** A re-encoding under way (reencode.ts runs it). */
export interface Migration {
  target: Encoder;
  status: ReencodeStatus;
  running: Promise<ReencodeOutcome>;
  /** Set by stop(): the loop ends at its next step. */
  stopped: boolean;
  /** Wakes a loop waiting to retry, so that stop() does not wait for the backoff. */
  wake: () => void;
}

export interface Collections {
  readonly deps: SearchServiceDeps;
  /** Re-encodings under way by collection id. */
  readonly migrations: Map<number, Migration>;
  /** Transform switches under way by collection id. */
  readonly switches: Map<number, TransformSwitch>;
  /** Recall measured per collection; the multiplier auto chooses. */
  readonly quality: QualityMonitor;
  /** The transform of the collection's first-stage codes, or undefined under first dims (read from the store once per fingerprint). */
  transformOf(c: CollectionRow): CodeTransform | undefined;
  /** A stored transform of the collection by fingerprint, as served; QEMBED_TRANSFORM_NOT_FOUND when it has none of that name. */
  transform(c: CollectionRow, fingerprint: string): CodeTransform;
  /** The collection's row; QEMBED_COLLECTION_NOT_FOUND when there is none. */
  require(name: string): CollectionRow;
  /** The encoder whose codes the collection holds; QEMBED_MODEL_MISMATCH when that model is not loaded here. */
  encoderOf(c: CollectionRow): Encoder;
  info(c: CollectionRow): CollectionInfo;
}

export function createCollections(deps: SearchServiceDeps): Collections {
  const { store } = deps;
  const migrations = new Map<number, Migration>();
  const switches = new Map<number, TransformSwitch>();
  // Transforms are immutable once stored (a fingerprint names its bytes): kept by collection and fingerprint.
  const transforms = new Map<string, CodeTransform>();
  const transform = (c: CollectionRow, fingerprint: string): CodeTransform => {
    const key = `${c.id}/${fingerprint}`;
    let t = transforms.get(key);
    if (!t) {
      const stored = store.getTransform(c.id, fingerprint);
      if (!stored) throw errors.transformNotFound(`collection "${c.name}" has no transform ${JSON.stringify(fingerprint)} (GET /collections/${c.name} lists its transforms)`);
      t = linearTransform(stored.method as TransformMethod, stored.fingerprint, stored.mean, stored.matrix, stored.bits);
      transforms.set(key, t);
    }
    return t;
  };
  const transformOf = (c: CollectionRow) => (c.transform === null ? undefined : transform(c, c.transform));
  const loadedEncoder = (c: CollectionRow): Encoder | undefined => {
    const active = deps.encoder();
    return c.fingerprint === active.fingerprint ? active : deps.encoderFor?.(c.fingerprint);
  };
  const quality = createQualityMonitor({
    store,
    firstStage: deps.firstStage,
    quantizerOf: (c) => loadedEncoder(c)?.quantizer,
    transformOf,
    options: deps.quality ?? { sampleSize: 0, cpuShare: 1, idleCpuShare: 1 },
    ...(deps.onBackgroundError && { onError: deps.onBackgroundError }),
  });

  const modelState = (c: CollectionRow): ModelState => {
    const served = deps.encoder().fingerprint;
    if (c.fingerprint === served) return { state: 'served', servedFingerprint: served, searchable: true };
    const searchable = deps.encoderFor?.(c.fingerprint) !== undefined;
    return { state: 'stale', servedFingerprint: served, searchable, action: staleAction(c, served, searchable, migrations.get(c.id)?.status) };
  };

  return {
    deps,
    migrations,
    switches,
    quality,
    transformOf,
    transform,
    require(name) {
      const c = store.getCollection(name);
      if (!c) throw errors.collectionNotFound(`collection "${name}" does not exist`);
      return c;
    },
    encoderOf(c) {
      const active = deps.encoder();
      const encoder = loadedEncoder(c);
      if (encoder) return encoder;
      const m = migrations.get(c.id);
      const what = m
        ? `; it is being re-encoded for ${m.status.targetFingerprint} (${m.status.done} of ${m.status.total} documents done): retry when it completes`
        : `; POST /collections/${c.name}/reencode re-encodes it for the served model`;
      throw errors.modelMismatch(
        `collection "${c.name}" holds codes of model ${c.fingerprint}, which is not loaded here; this service runs model ${active.fingerprint} ` +
          `(${active.bundle.manifest.name})${what}`,
      );
    },
    info(c) {
      const index = deps.firstStage.indexStats(c.id);
      return {
        name: c.name,
        fingerprint: c.fingerprint,
        dimension: c.dimension,
        codeBits: codeBitsOf(c),
        createdAt: c.created_at,
        documents: c.document_count,
        payloadBytes: c.payload_bytes,
        memoryBytes: index ? index.memoryBytes : null,
        index: index ? { documents: index.documents, slots: index.slots, tombstones: index.tombstones } : null,
        reencode: migrations.get(c.id)?.status ?? null,
        transform: transformView(store, c, switches.get(c.id)?.status ?? null),
        model: modelState(c),
        quality: quality.report(c),
      };
    },
  };
}

/** What a stale collection's answer tells its client: the re-encoding under way, or how to start one. */
function staleAction(c: CollectionRow, served: string, searchable: boolean, reencode: ReencodeStatus | undefined): string {
  if (reencode) {
    const where = `${reencode.done} of ${reencode.total} documents done`;
    return searchable
      ? `being re-encoded for ${reencode.targetFingerprint} (${where}); searches use the old codes until it completes`
      : `being re-encoded for ${reencode.targetFingerprint} (${where}); model ${c.fingerprint} is not available here, so searches and writes answer 409 until it completes`;
  }
  return (
    `its codes are model ${c.fingerprint}'s but the service runs ${served}: POST /collections/${c.name}/reencode re-encodes its ` +
    `${c.document_count} documents from their stored texts for ${served}` +
    (searchable ? '' : `; until then searches answer 409 (model ${c.fingerprint} is not available here)`)
  );
}
