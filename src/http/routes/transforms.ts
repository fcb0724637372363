/**
 * A collection's first-stage transforms: fits run by the worker (POST /collections/{name}/fit,
 * their progress and cancel), and switching its first-stage codes by hand (a stored transform, a
 * seeded rotation, or back to first dims).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errors } from '../../errors.js';
import { FIT_METHODS, type FitJob } from '../../jobs/fit-jobs.js';
import { JOB_STATES } from '../../jobs/train-jobs.js';
import { FIT_SWITCH_POLICIES, MIN_FIT_DOCUMENTS, type TransformFits } from '../../jobs/transform-fits.js';
import { type SearchService, SWITCH_POLICIES } from '../../search/search-service.js';
import { FIRST_DIMS } from '../../search/transforms.js';
import { collectionParamsSchema, collectionNameSchema } from '../schemas/collections.js';
import { errorResponses } from '../schemas/errors.js';
import { anyBadValue, withFieldErrors } from '../schemas/field-errors.js';
import { JsonObject, Nullable, StringEnum } from '../schemas/json.js';
import { collectionSchema, collectionView } from './collections.js';

export interface TransformRoutesDeps {
  search: SearchService;
  /** Absent without a job queue: the fit routes answer 503. */
  fits?: TransformFits;
}

export const fitJobSchema = Type.Object({
  id: Type.String(),
  state: StringEnum(JOB_STATES),
  collection: Type.String(),
  spec: JsonObject<object>({ description: 'The fit as the worker runs it: method, code lengths, seed, documents held out' }),
  created_at: Type.String(),
  started_at: Nullable(Type.String()),
  finished_at: Nullable(Type.String()),
  progress: Type.Number({ description: 'From 0 to 1' }),
  step: Nullable(Type.Integer()),
  total_steps: Nullable(Type.Integer()),
  loss: Nullable(Type.Number()),
  message: Nullable(Type.String({ description: 'Last status line, or why the fit failed' })),
  cancel_requested: Type.Boolean(),
  imported_at: Nullable(Type.String({ description: 'When the service stored the fitted transform (and started switching to it, per the fit\'s `switch`)' })),
  result: Nullable(JsonObject({ description: "The transform's fingerprint, the worker's evaluation on held-out documents and its training record" })),
});

/** A fit as answers show it: without the server's folders. */
export function fitJobView(job: FitJob) {
  const { bundle: _bundle, sample: _sample, out: _out, ...spec } = job.spec;
  return {
    id: job.id,
    state: job.state,
    collection: job.collection,
    spec,
    created_at: job.created_at,
    started_at: job.started_at,
    finished_at: job.finished_at,
    progress: job.progress,
    step: job.step,
    total_steps: job.total_steps,
    loss: job.loss,
    message: job.message,
    cancel_requested: job.cancel_requested,
    imported_at: job.imported_at,
    result: job.result,
  };
}

const fitParamsSchema = Type.Object({
  name: collectionNameSchema,
  id: withFieldErrors(Type.String({ maxLength: 64 }), anyBadValue(errors.invalidJobId, 'a fit id as POST /collections/{name}/fit returned it')),
});

export const transformRoutes: FastifyPluginAsyncTypebox<TransformRoutesDeps> = async (app, deps) => {
  const { search } = deps;
  const fits = () => {
    if (!deps.fits) throw errors.unavailable('transform fits need the job queue, which this process does not open');
    return deps.fits;
  };

  app.post(
    '/collections/:name/fit',
    {
      schema: {
        tags: ['collections'],
        summary: "Fit a first-stage transform on the collection's own documents (run by the worker)",
        description:
          `Writes a sample of the collection's int8 codes (at most max_documents, spread over it) and queues a fit for the companion worker (python -m qembed_worker work): ITQ, then quantization-aware training from it (method qat). When the worker is done, the service stores the transform with the collection (GET /collections/{name}: transform.available) and, with switch "if-better" (the default), recomputes the first-stage codes from the int8 codes and serves them only if they keep more of the exact top 10 than the served codes on the same queries. A collection needs ${MIN_FIT_DOCUMENTS} documents. Progress: GET /collections/{name}/fits.`,
        params: collectionParamsSchema,
        body: Type.Object(
          {
            method: Type.Optional(StringEnum(FIT_METHODS, { description: '`qat` (default: QEMBED_FIT_METHOD) or `itq`' })),
            max_documents: Type.Optional(Type.Integer({ minimum: MIN_FIT_DOCUMENTS, maximum: 10_000_000, description: 'Most documents to fit on (default QEMBED_FIT_MAX_DOCUMENTS)' })),
            seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 2_147_483_647 })),
            steps: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, description: 'QAT steps (default: the worker\'s)' })),
            switch: Type.Optional(StringEnum(FIT_SWITCH_POLICIES, { description: '`if-better` (default): serve it only if it measures better; `always`; `never`: only store it' })),
          },
          { additionalProperties: false },
        ),
        response: { 202: fitJobSchema, ...errorResponses(400, 401, 404, 409, 413, 415, 503) },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const job = await fits().request(request.params.name, {
        ...(b.method && { method: b.method }),
        ...(b.max_documents !== undefined && { maxDocuments: b.max_documents }),
        ...(b.seed !== undefined && { seed: b.seed }),
        ...(b.steps !== undefined && { steps: b.steps }),
        ...(b.switch && { switch: b.switch }),
      });
      void reply.code(202);
      return fitJobView(job);
    },
  );

  app.get(
    '/collections/:name/fits',
    {
      schema: {
        tags: ['collections'],
        summary: "The collection's transform fits, newest first, with their progress",
        params: collectionParamsSchema,
        response: { 200: Type.Object({ fits: Type.Array(fitJobSchema) }), ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request) => ({ fits: fits().list(request.params.name).map(fitJobView) }),
  );

  app.delete(
    '/collections/:name/fits/:id',
    {
      schema: {
        tags: ['collections'],
        summary: 'Cancel a fit: at once when queued, at the next progress report when running',
        params: fitParamsSchema,
        response: { 200: fitJobSchema, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request) => fitJobView(fits().cancel(request.params.name, request.params.id)),
  );

  app.post(
    '/collections/:name/transform',
    {
      schema: {
        tags: ['collections'],
        summary: "Switch the collection's first-stage codes to another transform",
        description:
          `transform: a fingerprint from GET /collections/{name} (transform.available), "rotation" (a seeded random rotation, stored first: the RaBitQ-style baseline) or "${FIRST_DIMS}" (the sign of the first dimensions; immediate). The codes are recomputed from the stored int8 codes in the background (progress in transform.switching), then swapped in atomically: with policy "always" (the default here), or "if-better": only if they measure better than the served codes. 202 when a switch started or was running; 200 when nothing was left to do.`,
        params: collectionParamsSchema,
        body: Type.Object(
          {
            transform: Type.String({ minLength: 1, maxLength: 128 }),
            seed: Type.Optional(Type.Integer({ minimum: 1, maximum: 4_294_967_295, description: 'The rotation\'s seed (default 1)' })),
            policy: Type.Optional(StringEnum(SWITCH_POLICIES)),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ state: StringEnum(['served']), collection: collectionSchema }),
          202: Type.Object({ state: StringEnum(['started', 'running']), collection: collectionSchema }),
          ...errorResponses(400, 401, 404, 409, 413, 415),
        },
      },
    },
    async (request, reply) => {
      const { name } = request.params;
      const { transform, seed, policy } = request.body;
      if (seed !== undefined && transform !== 'rotation') throw errors.invalidTransform('seed goes with transform "rotation" only');
      const target = transform === 'rotation' ? search.addRotation(name, seed ?? 1).fingerprint : transform;
      const wasRunning = search.getCollection(name).transform.switching?.target === target;
      const running = search.switchTransform(name, target, policy ?? 'always');
      // The outcome shows in GET /collections/{name}; a failure there is the switch's own (it retries).
      running.catch(() => {});
      const c = search.getCollection(name);
      if (c.transform.switching) {
        void reply.code(202);
        return { state: wasRunning ? ('running' as const) : ('started' as const), collection: collectionView(c) };
      }
      await running;
      return { state: 'served' as const, collection: collectionView(search.getCollection(name)) };
    },
  );
};
