/**
 * Switching the served model at run time: POST /models/{fingerprint}/activate. The new encoder
 * takes new requests at once; requests already running finish on the old one, which is closed
 * when nothing needs it any more. Collections bound to the old model are re-encoded from their
 * stored texts in the background (searches use their old codes meanwhile) and switch atomically.
 * The choice survives restarts (meta key active_model_dir).
 *
 * A collection bound to a model that is not served (the service restarted with another bundle,
 * or an activation's re-encoding was interrupted) is never stuck: POST
 * /collections/{name}/reencode re-encodes it for the served model, and re-encodings interrupted
 * by a restart resume at start. While one runs, the old model is loaded when its bundle is in
 * the models folder, so the collection keeps being searched on its old codes.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Encoder } from '../encoder/encoder.js';
import { hasManifest, readManifest } from '../encoder/manifest.js';
import { errors } from '../errors.js';
import type { CollectionInfo, SearchService } from '../search/search-service.js';
import type { MetaRepository } from '../store/store.js';
import type { ModelRegistry } from './registry.js';

export const ACTIVE_MODEL_KEY = 'active_model_dir';

/**
 * The bundle activated at run time (POST /models/{fingerprint}/activate), which the server
 * serves instead of QEMBED_MODEL_DIR; undefined when none was, or when its folder is gone.
 */
export function activatedModelDir(meta: MetaRepository): string | undefined {
  const dir = meta.getMeta(ACTIVE_MODEL_KEY);
  return dir && hasManifest(dir) ? dir : undefined;
}

export interface ActivationResult {
  previous: { name: string; fingerprint: string };
  current: { name: string; fingerprint: string };
  /** Collections now being re-encoded for the new model. */
  reencoding: { collection: string; documents: number }[];
}

export interface Activation {
  activate(fingerprint: string): Promise<ActivationResult>;
  /**
   * Resumes re-encodings a restart interrupted (collections whose target is the served model),
   * loading their old model first when its bundle is there; returns the collections.
   */
  resume(): Promise<string[]>;
  /** Re-encodes one collection for the served model (POST /collections/{name}/reencode). */
  reencodeCollection(name: string): Promise<CollectionReencode>;
  /**
   * With several API processes on one database: serves the model the database says was
   * activated (by another process), keeping the old model loaded while collections are still
   * bound to it, and takes over re-encodings no process runs any more (the store lets one
   * process run each). Returns whether the served model changed.
   */
  follow(): Promise<boolean>;
}

export interface CollectionReencode {
  /** started: a re-encoding began; running: one was already under way; none: nothing to do. */
  state: 'started' | 'running' | 'none';
  collection: CollectionInfo;
}

const ref = (e: Encoder) => ({ name: e.bundle.manifest.name, fingerprint: e.fingerprint });

export function createActivation(deps: { registry: ModelRegistry; search: SearchService; meta: MetaRepository; logger?: Logger }): Activation {
  const { registry, search } = deps;

  /** Re-encodes in the background, keeping the collection's old encoder (if any) loaded meanwhile. */
  const reencodeInBackground = (collection: string, target: Encoder, keep?: Encoder) => {
    const release = keep ? registry.hold(keep) : () => {};
    const releaseTarget = registry.hold(target);
    const started = performance.now();
    // A refusal (thrown before any work) is logged like a failure, never thrown at the caller.
    Promise.resolve()
      .then(() => search.reencode(collection, target))
      .then(
        (outcome) => {
          const seconds = Math.round((performance.now() - started) / 100) / 10;
          if (outcome === 'done') deps.logger?.info({ collection, fingerprint: target.fingerprint, seconds }, 're-encoding done');
          else if (outcome === 'stopped') deps.logger?.info({ collection, fingerprint: target.fingerprint }, 're-encoding paused; it resumes at the next start');
          else if (outcome === 'elsewhere') deps.logger?.debug({ collection, fingerprint: target.fingerprint }, 'another API process re-encodes this collection');
          else deps.logger?.info({ collection }, 're-encoding ended: the collection was deleted');
        },
        (e: Error) => deps.logger?.error({ collection, err: e }, 're-encoding failed'),
      )
      .finally(() => {
        release();
        releaseTarget();
      });
  };

  /** The encoder of a collection's old codes: loaded already, or loaded now from the models folder. */
  const oldEncoder = async (fingerprint: string): Promise<Encoder | undefined> => {
    try {
      return registry.loaded(fingerprint) ?? (await registry.load(fingerprint));
    } catch (e) {
      deps.logger?.warn({ fingerprint, err: e }, 'the model of a collection being re-encoded cannot be loaded; the collection answers 409 until the re-encoding completes');
      return undefined;
    }
  };

  /** Old models this process keeps loaded for collections not re-encoded yet (follow). */
  const kept = new Map<string, () => void>();

  const resume = async () => {
    const active = registry.active();
    const resumed: string[] = [];
    for (const c of search.listCollections()) {
      if (c.reencode || c.fingerprint === active.fingerprint) continue;
      if (search.reencodeTarget(c.name) !== active.fingerprint) continue;
      reencodeInBackground(c.name, active, await oldEncoder(c.fingerprint));
      resumed.push(c.name);
    }
    return resumed;
  };

  return {
    async follow() {
      const dir = activatedModelDir(deps.meta);
      const before = registry.active();
      let switched = false;
      if (dir && path.resolve(dir) !== path.resolve(before.bundle.dir)) {
        const { fingerprint } = readManifest(dir);
        if (fingerprint !== before.fingerprint) {
          if (!kept.has(before.fingerprint)) kept.set(before.fingerprint, registry.hold(before));
          await registry.activate(fingerprint);
          deps.logger?.info({ from: before.fingerprint, to: fingerprint }, 'model activated by another API process; serving it');
          switched = true;
        }
      }
      const bound = new Set(search.listCollections().map((c) => c.fingerprint));
      for (const [fingerprint, release] of kept) {
        if (bound.has(fingerprint)) continue;
        release();
        kept.delete(fingerprint);
      }
      await resume();
      return switched;
    },
    async activate(fingerprint) {
      const busy = search.listCollections().filter((c) => c.reencode);
      if (busy.length > 0 && fingerprint !== registry.active().fingerprint) {
        const what = busy.map((c) => `"${c.name}" (${c.reencode!.done} of ${c.reencode!.total})`).join(', ');
        throw errors.conflict(`collections are still being re-encoded for the current model: ${what}; activate another model once they are done`);
      }
      // Every collection of another model must be re-encodable for this one, checked before the
      // switch: a compact first stage needs its length among the new model's code lengths.
      const target = registry.list().find((m) => m.fingerprint === fingerprint);
      if (target) {
        const spec = { fingerprint, name: target.name, codeBits: target.binary_code_bits };
        const problems = search
          .listCollections()
          .filter((c) => c.fingerprint !== fingerprint)
          .flatMap((c) => search.reencodeProblem(c.name, spec) ?? []);
        if (problems.length > 0) throw errors.conflict(`model ${fingerprint} cannot be activated: ${problems.join('; ')}`);
      }
      const before = registry.active();
      // Keep the old encoder loaded until its collections are re-encoded.
      const releaseBefore = registry.hold(before);
      try {
        const { previous, current } = await registry.activate(fingerprint);
        deps.meta.setMeta(ACTIVE_MODEL_KEY, path.resolve(current.bundle.dir));
        const reencoding: ActivationResult['reencoding'] = [];
        if (previous !== current) {
          for (const c of search.listCollections()) {
            if (c.fingerprint === current.fingerprint) continue;
            reencodeInBackground(c.name, current, registry.loaded(c.fingerprint));
            reencoding.push({ collection: c.name, documents: c.documents });
          }
          deps.logger?.info({ from: previous.fingerprint, to: current.fingerprint, collections: reencoding.length }, 'model activated');
        }
        return { previous: ref(previous), current: ref(current), reencoding };
      } finally {
        releaseBefore();
      }
    },
    resume,
    async reencodeCollection(name) {
      const c = search.getCollection(name);
      const active = registry.active();
      if (c.reencode) {
        if (c.reencode.targetFingerprint !== active.fingerprint) {
          throw errors.conflict(`collection "${name}" is being re-encoded for ${c.reencode.targetFingerprint}, not the served model; retry when it is done`);
        }
        return { state: 'running', collection: c };
      }
      if (c.fingerprint === active.fingerprint) return { state: 'none', collection: c };
      reencodeInBackground(name, active, await oldEncoder(c.fingerprint));
      deps.logger?.info({ collection: name, from: c.fingerprint, to: active.fingerprint }, 're-encoding a collection for the served model');
      return { state: 'started', collection: search.getCollection(name) };
    },
  };
}
