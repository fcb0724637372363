/**
 * Switching the served model at run time: POST /models/{fingerprint}/activate. The new encoder
 * takes new requests at once; requests already running finish on the old one, which is closed
 * when nothing needs it any more. Collections bound to the old model are re-encoded from their
 * stored texts in the background (searches use their old codes meanwhile) and switch atomically.
 * The choice survives restarts (meta key active_model_dir).
 */
import path from 'node:path';
import type { Logger } from 'pino';
import type { Encoder } from '../encoder/encoder.js';
import { errors } from '../errors.js';
import type { SearchService } from '../search/search-service.js';
import type { Db } from '../store/database.js';
import type { ModelRegistry } from './registry.js';

export const ACTIVE_MODEL_KEY = 'active_model_dir';

export interface ActivationResult {
  previous: { name: string; fingerprint: string };
  current: { name: string; fingerprint: string };
  /** Collections now being re-encoded for the new model. */
  reencoding: { collection: string; documents: number }[];
}

export interface Activation {
  activate(fingerprint: string): Promise<ActivationResult>;
  /** Resumes re-encodings a restart interrupted (collections whose target is the active model). */
  resume(): string[];
}

const ref = (e: Encoder) => ({ name: e.bundle.manifest.name, fingerprint: e.fingerprint });

export function createActivation(deps: { registry: ModelRegistry; search: SearchService; db: Db; logger?: Logger }): Activation {
  const { registry, search } = deps;
  const setActive = deps.db.prepare("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value");

  const reencodeInBackground = (collection: string, target: Encoder, keep?: Encoder) => {
    const release = keep ? registry.hold(keep) : () => {};
    const started = performance.now();
    search
      .reencode(collection, target)
      .then(
        () => deps.logger?.info({ collection, fingerprint: target.fingerprint, seconds: Math.round((performance.now() - started) / 100) / 10 }, 're-encoding done'),
        (e: Error) => deps.logger?.error({ collection, err: e }, 're-encoding failed'),
      )
      .finally(release);
  };

  return {
    async activate(fingerprint) {
      const busy = search.listCollections().filter((c) => c.reencode);
      if (busy.length > 0 && fingerprint !== registry.active().fingerprint) {
        const what = busy.map((c) => `"${c.name}" (${c.reencode!.done} of ${c.reencode!.total})`).join(', ');
        throw errors.conflict(`collections are still being re-encoded for the current model: ${what}; activate another model once they are done`);
      }
      const before = registry.active();
      // Keep the old encoder loaded until its collections are re-encoded.
      const releaseBefore = registry.hold(before);
      try {
        const { previous, current } = await registry.activate(fingerprint);
        setActive.run(ACTIVE_MODEL_KEY, path.resolve(current.bundle.dir));
        const reencoding: ActivationResult['reencoding'] = [];
        if (previous !== current) {
          for (const c of search.listCollections()) {
            if (c.fingerprint === current.fingerprint) continue;
            const old = registry.loaded(c.fingerprint);
            reencodeInBackground(c.name, current, old);
            reencoding.push({ collection: c.name, documents: c.documents });
          }
          deps.logger?.info({ from: previous.fingerprint, to: current.fingerprint, collections: reencoding.length }, 'model activated');
        }
        return { previous: ref(previous), current: ref(current), reencoding };
      } finally {
        releaseBefore();
      }
    },
    resume() {
      const active = registry.active();
      const resumed: string[] = [];
      for (const c of search.store.listCollections()) {
        if (c.reencode_target !== active.fingerprint || c.fingerprint === active.fingerprint) continue;
        reencodeInBackground(c.name, active, registry.loaded(c.fingerprint));
        resumed.push(c.name);
      }
      return resumed;
    },
  };
}
