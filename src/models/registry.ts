/**
 * The model bundles the service knows (the folders of QEMBED_MODELS_DIR) and the encoders it
 * has loaded. Exactly one encoder is active (new requests use it); an encoder that is no longer
 * active stays loaded while something still needs it — requests that started with it, or
 * collections whose codes it made and that are being re-encoded — and is closed afterwards.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { errors } from '../errors.js';
import { type Bundle, loadBundle, type Manifest } from '../encoder/bundle.js';
import { hasManifest, readManifest, supportedCodeBits } from '../encoder/manifest.js';
import type { Encoder } from '../encoder/encoder.js';
import { type EvaluationRecord, readEvaluation } from './evaluation-record.js';

export interface ModelInfo {
  name: string;
  fingerprint: string;
  dir: string;
  source: Manifest['source'];
  dimension: number;
  /** Binary code lengths the bundle supports (collections' code_bits). */
  binary_code_bits: number[];
  weights: string;
  created_at: string | null;
  training: Record<string, unknown> | null;
  /** The manifest's evaluation, else the figures `qembed eval --record` kept (evaluation.json). */
  evaluation: Record<string, unknown> | EvaluationRecord | null;
  active: boolean;
  loaded: boolean;
  /** Why the folder cannot be served, when it cannot. */
  problem?: string;
}

export interface ModelRegistry {
  /** The encoder new requests use. */
  active(): Encoder;
  /** A loaded encoder by fingerprint (the active one, or one kept for a re-encoding). */
  loaded(fingerprint: string): Encoder | undefined;
  list(): ModelInfo[];
  /** A bundle folder as answers show it: relative to the models folder, else its name only. */
  displayDir(dir: string): string;
  /** Loads the bundle with this fingerprint and makes it active; returns the previous encoder. */
  activate(fingerprint: string): Promise<{ previous: Encoder; current: Encoder }>;
  /**
   * Loads the bundle with this fingerprint without making it active (to search a collection's
   * old codes while it is re-encoded); undefined when no bundle of the models folder has it.
   * Hold the encoder while it is needed: an encoder nothing holds is closed.
   */
  load(fingerprint: string): Promise<Encoder | undefined>;
  /** Marks an encoder as needed (a request or a re-encoding uses it); call the returned release when done. */
  hold(encoder: Encoder): () => void;
  close(): Promise<void>;
}

export type EncoderFactory = (bundle: Bundle) => Promise<Encoder>;

export function createModelRegistry(opts: { modelsDir: string; initial: Encoder; createEncoder: EncoderFactory; onActivate?: (dir: string) => void }): ModelRegistry {
  let current = opts.initial;
  const encoders = new Map<string, Encoder>([[current.fingerprint, current]]);
  const holds = new Map<Encoder, number>();
  let activating: Promise<unknown> | null = null;

  /** Closes an encoder nothing needs any more, once the requests queued on it have finished. */
  const maybeClose = (encoder: Encoder) => {
    if (encoder === current || (holds.get(encoder) ?? 0) > 0) return;
    const started = Date.now();
    const attempt = () => {
      if (encoder === current || (holds.get(encoder) ?? 0) > 0) return; // needed again meanwhile
      if (encoder.queueDepth() + encoder.backgroundDepth() > 0 && Date.now() - started < 120_000) {
        setTimeout(attempt, 100).unref();
        return;
      }
      if (encoders.get(encoder.fingerprint) === encoder) encoders.delete(encoder.fingerprint);
      void encoder.close();
    };
    attempt();
  };

  // The bundle served at start may live outside the models folder (QEMBED_MODEL_DIR): it stays listed and activatable.
  const startDir = path.resolve(opts.initial.bundle.dir);

  const scan = (): { dir: string; manifest?: Manifest; problem?: string }[] => {
    const dirs = existsSync(opts.modelsDir)
      ? readdirSync(opts.modelsDir, { withFileTypes: true })
          .filter((d) => d.isDirectory() && !d.name.startsWith('.') && hasManifest(path.join(opts.modelsDir, d.name)))
          .map((d) => path.resolve(opts.modelsDir, d.name))
      : [];
    if (!dirs.includes(startDir) && hasManifest(startDir)) dirs.unshift(startDir);
    return dirs.map((dir) => {
        try {
          return { dir, manifest: readManifest(dir) };
        } catch (e) {
          return { dir, problem: (e as Error).message };
        }
      });
  };

  return {
    active: () => current,
    loaded: (fingerprint) => encoders.get(fingerprint),
    displayDir(dir) {
      const rel = path.relative(path.resolve(opts.modelsDir), path.resolve(dir));
      return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : path.basename(dir);
    },
    list() {
      const seen = new Set<string>();
      const infos: ModelInfo[] = [];
      const entries = scan();
      if (!entries.some((e) => e.manifest?.fingerprint === current.fingerprint)) entries.unshift({ dir: current.bundle.dir, manifest: current.bundle.manifest });
      for (const e of entries) {
        if (!e.manifest) {
          infos.push({ name: path.basename(e.dir), fingerprint: '', dir: e.dir, source: { model: '' }, dimension: 0, binary_code_bits: [], weights: '', created_at: null, training: null, evaluation: null, active: false, loaded: false, problem: e.problem! });
          continue;
        }
        const m = e.manifest;
        if (seen.has(m.fingerprint)) continue;
        seen.add(m.fingerprint);
        infos.push({
          name: m.name,
          fingerprint: m.fingerprint,
          dir: e.dir,
          source: m.source,
          dimension: m.dimension,
          binary_code_bits: supportedCodeBits(m),
          weights: m.weights.precision,
          created_at: m.created_at ?? null,
          training: m.training ?? null,
          evaluation: m.evaluation ?? readEvaluation(e.dir, m.fingerprint),
          active: m.fingerprint === current.fingerprint,
          loaded: encoders.has(m.fingerprint),
        });
      }
      return infos;
    },
    async activate(fingerprint) {
      if (activating) throw errors.conflict('another model activation is in progress; retry when it finishes');
      const previous = current;
      if (fingerprint === current.fingerprint) return { previous, current };
      const entry = scan().find((e) => e.manifest?.fingerprint === fingerprint);
      if (!entry) throw errors.modelNotFound(`no bundle with fingerprint ${fingerprint} in the models folder (GET /models lists them)`);
      const work = (async () => {
        const encoder = encoders.get(fingerprint) ?? (await opts.createEncoder(await loadBundle(entry.dir)));
        encoders.set(fingerprint, encoder);
        current = encoder;
        opts.onActivate?.(entry.dir);
        maybeClose(previous);
        return encoder;
      })();
      activating = work;
      try {
        return { previous, current: await work };
      } catch (e) {
        throw errors.conflict(`the bundle ${fingerprint} cannot be served: ${(e as Error).message}`);
      } finally {
        activating = null;
      }
    },
    async load(fingerprint) {
      const loaded = encoders.get(fingerprint);
      if (loaded) return loaded;
      const entry = scan().find((e) => e.manifest?.fingerprint === fingerprint);
      if (!entry) return undefined;
      const encoder = await opts.createEncoder(await loadBundle(entry.dir));
      const raced = encoders.get(fingerprint);
      if (raced) {
        void encoder.close();
        return raced;
      }
      encoders.set(fingerprint, encoder);
      return encoder;
    },
    hold(encoder) {
      holds.set(encoder, (holds.get(encoder) ?? 0) + 1);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        holds.set(encoder, (holds.get(encoder) ?? 1) - 1);
        maybeClose(encoder);
      };
    },
    async close() {
      await Promise.all([...encoders.values()].map((e) => e.close()));
      encoders.clear();
    },
  };
}

/**
 * The bundle a training job starts from: the one `ref` names (fingerprint or name), else the
 * active one. 404 QEMBED_MODEL_NOT_FOUND when no valid bundle of the registry matches.
 */
export function baseBundle(registry: ModelRegistry, ref: string | undefined): ModelInfo {
  const bundles = registry.list().filter((m) => m.fingerprint);
  const found = ref === undefined ? bundles.find((m) => m.active) : bundles.find((m) => m.fingerprint === ref || m.name === ref);
  if (!found) throw errors.modelNotFound(`no bundle ${JSON.stringify(ref)} to start from (GET /models lists them)`);
  return found;
}
