/**
 * Fitting a collection's first-stage transform with the worker, from the service's side: a fit
 * writes a sample of the collection's int8 codes to the job's folder and queues the job
 * (fit-jobs.ts); the worker fits it (ITQ, then quantization-aware training); the service takes
 * the result (one process: takeResult), stores the transform with the collection and switches to
 * it in the background, with the `if-better` policy by default: its codes are recomputed from the
 * int8 codes, measured against the served ones on the same queries, and swapped in only when they
 * keep more of the exact top 10 (search/transforms.ts).
 *
 * Automatic fits (QEMBED_AUTO_FIT): a collection is fitted when it reaches
 * QEMBED_AUTO_FIT_DOCUMENTS, and again once it has grown by QEMBED_AUTO_FIT_GROWTH_PERCENT since
 * the last fit asked for (meta `autofit:<name>@<created_at>` records that size, failed fits included,
 * so that a fit that fails is not asked for again until the collection grows).
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { errors } from '../errors.js';
import { writeInt8Npy } from '../files/npy.js';
import type { CollectionInfo, SearchService, SwitchOutcome, SwitchPolicy } from '../search/search-service.js';
import type { MetaRepository } from '../store/store.js';
import { type FitJob, fitJobFiles, type FitJobs, type FitJobSpec } from './fit-jobs.js';

/** Fewer documents than this give too little to fit on (and to hold out for the fit's own evaluation). */
export const MIN_FIT_DOCUMENTS = 1000;

/** What happens to a fitted transform: switched to if it measures better (default), switched to whatever it measures, or only stored. */
export const FIT_SWITCH_POLICIES = ['if-better', 'always', 'never'] as const;
export type FitSwitchPolicy = (typeof FIT_SWITCH_POLICIES)[number];

export interface FitRequest {
  method?: 'itq' | 'qat';
  /** Most documents the fit is trained on (default QEMBED_FIT_MAX_DOCUMENTS). */
  maxDocuments?: number;
  seed?: number;
  steps?: number;
  switch?: FitSwitchPolicy;
}

export interface TransformFitsOptions {
  dataDir: string;
  autoFit: boolean;
  autoFitDocuments: number;
  autoFitGrowthPercent: number;
  fitMaxDocuments: number;
  fitMethod: 'itq' | 'qat';
}

export interface TransformFitsDeps {
  search: SearchService;
  fitJobs: FitJobs;
  meta: MetaRepository;
  options: TransformFitsOptions;
  /** A fit imported and its switch ended, or a step that failed (never thrown to a request). */
  onEvent?(event: { collection: string; job: string; outcome?: SwitchOutcome; fingerprint?: string; error?: unknown }): void;
}

export interface TransformFits {
  /** Queues a fit of the collection (its sample written first); 409 while one is queued or running, or for a collection too small. */
  request(collection: string, request: FitRequest, reason?: 'request' | 'auto'): Promise<FitJob>;
  /** The collection's fits, newest first. */
  list(collection: string, limit?: number): FitJob[];
  /** Cancels one of the collection's fits. */
  cancel(collection: string, id: string): FitJob;
  /** Takes the fits the worker finished: stores each transform and starts its switch; removes the folders of jobs that ended. */
  poll(): Promise<void>;
  /** Asks for the automatic fits due now (QEMBED_AUTO_FIT). */
  autoFit(): Promise<void>;
}

const metaKey = (id: string) => `fit:${id}`;
/** Keyed by name and creation time: a collection created again under a name starts afresh. */
const autoKey = (c: CollectionInfo) => `autofit:${c.name}@${c.createdAt}`;
const ACTIVE = new Set(['queued', 'running']);

export function createTransformFits(deps: TransformFitsDeps): TransformFits {
  const { search, fitJobs, meta, options } = deps;
  const folder = (id: string) => path.join(options.dataDir, fitJobFiles(id).dir);

  const activeFit = (collection: string) => fitJobs.list({ collection, limit: 20 }).find((j) => ACTIVE.has(j.state));

  async function request(collection: string, r: FitRequest, reason: 'request' | 'auto' = 'request'): Promise<FitJob> {
    const c = search.getCollection(collection);
    if (c.documents < MIN_FIT_DOCUMENTS) {
      throw errors.collectionTooSmall(`collection "${collection}" holds ${c.documents} documents; a fit needs at least ${MIN_FIT_DOCUMENTS} (some are held out to evaluate it)`);
    }
    const running = activeFit(collection);
    if (running) throw errors.conflict(`collection "${collection}" has a fit ${running.state} (job ${running.id}); cancel it first (DELETE /collections/${collection}/fits/${running.id})`);
    const limit = r.maxDocuments ?? options.fitMaxDocuments;
    if (!Number.isInteger(limit) || limit < MIN_FIT_DOCUMENTS) throw errors.invalidJob(`max_documents ${limit}: at least ${MIN_FIT_DOCUMENTS}`);
    const sample = await search.codeSample(collection, limit);
    const id = randomUUID();
    const files = fitJobFiles(id);
    mkdirSync(folder(id), { recursive: true });
    try {
      writeInt8Npy(path.join(options.dataDir, files.sample), sample.rows, sample.dimension, sample.codes);
      const spec: FitJobSpec = {
        collection,
        collection_id: sample.collectionId,
        model: sample.fingerprint,
        bundle: path.resolve(sample.bundleDir),
        sample: files.sample,
        out: files.out,
        bits: [sample.codeBits],
        method: r.method ?? options.fitMethod,
        seed: r.seed ?? 1,
        // A tenth of the sample is held out for the fit's own evaluation, 100 to 1,000 documents.
        holdout: Math.max(100, Math.min(1000, Math.round(sample.rows / 10))),
        ...(r.steps !== undefined && { steps: r.steps }),
      };
      meta.setMeta(metaKey(id), JSON.stringify({ switch: r.switch ?? 'if-better', reason, documents: sample.documents, sampled: sample.rows }));
      return fitJobs.create(id, spec);
    } catch (e) {
      rmSync(folder(id), { recursive: true, force: true });
      throw e;
    }
  }

  /** Stores the transform of a succeeded fit and starts its switch. */
  function importResult(job: FitJob): void {
    const note = JSON.parse(meta.getMeta(metaKey(job.id)) ?? '{}') as { switch?: FitSwitchPolicy; reason?: string; documents?: number; sampled?: number };
    const collection = job.spec.collection;
    let current: CollectionInfo | undefined;
    try {
      current = search.getCollection(collection);
    } catch {
      return; // deleted since
    }
    const result = job.result as { artifact: string; fingerprint: string };
    const view = search.addTransformArtifact(collection, path.join(options.dataDir, result.artifact), {
      job: job.id,
      reason: note.reason ?? 'request',
      documentsAtFit: note.documents ?? null,
      sampled: note.sampled ?? null,
      fittedAt: job.finished_at,
    });
    if (current.fingerprint !== job.spec.model) return; // stored for the record; addArtifact refused another model's
    const policy = note.switch ?? 'if-better';
    if (policy === 'never') return;
    search.switchTransform(collection, view.fingerprint, policy as SwitchPolicy).then(
      (outcome) => deps.onEvent?.({ collection, job: job.id, outcome, fingerprint: view.fingerprint }),
      (error: unknown) => deps.onEvent?.({ collection, job: job.id, error }),
    );
  }

  return {
    request,
    list: (collection, limit = 20) => {
      search.getCollection(collection); // 404 for a collection that does not exist
      return fitJobs.list({ collection, limit });
    },
    cancel(collection, id) {
      const job = fitJobs.get(id);
      if (!job || job.spec.collection !== collection) throw errors.jobNotFound(`collection "${collection}" has no fit ${JSON.stringify(id)}`);
      return fitJobs.cancel(id)!;
    },
    async poll() {
      for (const job of fitJobs.list({ state: 'succeeded', limit: 100 })) {
        if (job.imported_at !== null) continue;
        const taken = fitJobs.takeResult(job.id);
        if (!taken) continue; // another process took it
        try {
          importResult(taken);
        } catch (error) {
          deps.onEvent?.({ collection: job.spec.collection, job: job.id, error });
        }
        rmSync(folder(job.id), { recursive: true, force: true });
        meta.setMeta(metaKey(job.id), '');
      }
      // The samples of fits that failed or were cancelled are of no further use.
      for (const state of ['failed', 'cancelled'] as const) {
        for (const job of fitJobs.list({ state, limit: 100 })) if (meta.getMeta(metaKey(job.id))) {
          rmSync(folder(job.id), { recursive: true, force: true });
          meta.setMeta(metaKey(job.id), '');
        }
      }
    },
    async autoFit() {
      if (!options.autoFit) return;
      for (const c of search.listCollections()) {
        if (c.documents < Math.max(options.autoFitDocuments, MIN_FIT_DOCUMENTS) || c.model.state !== 'served' || c.reencode || c.transform.switching) continue;
        const last = Number(meta.getMeta(autoKey(c)) ?? 0);
        if (last > 0 && c.documents < last * (1 + options.autoFitGrowthPercent / 100)) continue;
        if (activeFit(c.name)) continue;
        try {
          meta.setMeta(autoKey(c), String(c.documents));
          await request(c.name, {}, 'auto');
        } catch (error) {
          deps.onEvent?.({ collection: c.name, job: '', error });
        }
      }
    },
  };
}
