/** Training jobs: queued here, claimed and run by a worker process (python -m qembed_worker work). */
import path from 'node:path';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errors } from '../../errors.js';
import { BUNDLE_NAME_PATTERN, buildJobSpec, TRAIN_LOSSES, TRAIN_MODES, TRAIN_PRECISIONS } from '../../jobs/job-spec.js';
import { JOB_STATES, type TrainJob, type TrainJobs } from '../../jobs/train-jobs.js';
import { baseBundle, type ModelRegistry } from '../../models/registry.js';
import { errorResponses } from '../schemas/errors.js';
import { anyBadValue, withFieldErrors } from '../schemas/field-errors.js';
import { JsonObject, Nullable, StringEnum } from '../schemas/json.js';

export interface TrainJobsDeps {
  jobs?: { jobs: TrainJobs; datasetsDir: string };
  registry?: ModelRegistry;
}

const jobSchema = Type.Object({
  id: Type.String(),
  state: StringEnum(JOB_STATES),
  spec: JsonObject<object>({ description: 'The job as the worker runs it, defaults filled in' }),
  created_at: Type.String(),
  started_at: Type.Optional(Nullable(Type.String())),
  finished_at: Type.Optional(Nullable(Type.String())),
  worker: Type.Optional(Nullable(Type.String({ description: 'The worker that claimed the job' }))),
  lease_expires_at: Type.Optional(Nullable(Type.String({ description: 'A running job whose worker does not report before this is marked failed' }))),
  progress: Type.Number({ description: 'From 0 to 1' }),
  step: Type.Optional(Nullable(Type.Integer())),
  total_steps: Type.Optional(Nullable(Type.Integer())),
  loss: Type.Optional(Nullable(Type.Number())),
  message: Type.Optional(Nullable(Type.String({ description: 'Last status line, or why the job failed' }))),
  cancel_requested: Type.Optional(Type.Boolean()),
  result: Type.Optional(Nullable(JsonObject({ description: 'The new bundle (fingerprint, dir) and its figures' }))),
});

const jobRequestSchema = Type.Object(
  {
    dataset: Type.String({ minLength: 1, maxLength: 512, description: 'BEIR dataset folder, relative to the datasets root (QEMBED_DATASETS_DIR)' }),
    mode: Type.Optional(StringEnum(TRAIN_MODES, { description: '`head`: a small head on the frozen encoder (minutes on a CPU); `full`: the whole encoder (GPU)' })),
    loss: Type.Optional(StringEnum(TRAIN_LOSSES, { description: '`distill`: label-free self-distillation on the corpus; `mnrl`: contrastive on queries + qrels' })),
    precisions: Type.Optional(Type.Array(StringEnum(TRAIN_PRECISIONS), { minItems: 1, maxItems: 3, description: 'Precisions in the loss' })),
    weights: Type.Optional(Type.Array(Type.Number({ minimum: 0, maximum: 100 }), { minItems: 1, maxItems: 3, description: 'One weight per precision' })),
    steps: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Exact number of training steps (default: `epochs` passes over the data)' })),
    epochs: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, description: 'Passes over the data when `steps` is not given (default 20 for head, 1 for full)' })),
    batch_size: Type.Optional(Type.Integer({ minimum: 2, maximum: 4096 })),
    learning_rate: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
    seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1 })),
    asymmetric: Type.Optional(Type.Boolean({ description: 'Keep queries float32 and quantize documents only (what the service serves)' })),
    base_model: Type.Optional(Type.String({ description: 'Fingerprint or name of the bundle to start from (default: the active one)' })),
    name: Type.Optional(
      withFieldErrors(
        Type.String({
          pattern: BUNDLE_NAME_PATTERN,
          description: 'Name of the new bundle: its manifest name, which requests may send as `model`, and the stem of its folder (default: `{base name}-qat-{mode}`)',
        }),
        anyBadValue(errors.invalidJobName, "the new bundle's name: 1 to 64 characters from A-Z a-z 0-9 _ . -"),
      ),
    ),
  },
  { additionalProperties: false },
);

const jobParamsSchema = Type.Object({
  id: withFieldErrors(Type.String({ maxLength: 64 }), anyBadValue(errors.invalidJobId, 'a job id as POST /train-jobs returned it')),
});

const jobListQuerySchema = Type.Object(
  { state: Type.Optional(StringEnum(JOB_STATES)), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })) },
  { additionalProperties: false },
);

/**
 * A job as answers show it: without the absolute server paths the worker needs (the dataset's
 * resolved folder, the bundle folders), named by what the client sent or by fingerprint.
 */
function publicView(job: TrainJob): TrainJob {
  const { dataset_path: _path, base_model, ...spec } = job.spec as TrainJob['spec'] & { dataset_path?: string };
  const result = job.result && typeof job.result === 'object' && 'dir' in job.result ? { ...job.result, dir: path.basename(String(job.result.dir)) } : job.result;
  return { ...job, spec: { ...spec, base_model: { fingerprint: base_model.fingerprint, name: base_model.name } }, result } as TrainJob;
}

export const trainJobRoutes: FastifyPluginAsyncTypebox<TrainJobsDeps> = async (app, deps) => {
  const need = () => {
    if (!deps.jobs || !deps.registry) throw errors.unavailable('training jobs are not configured in this process');
    return { ...deps.jobs, registry: deps.registry };
  };
  const notFound = (id: string) => errors.jobNotFound(`no training job ${JSON.stringify(id)}`);

  app.post(
    '/train-jobs',
    {
      schema: {
        tags: ['training'],
        summary: 'Queue a training job for the worker',
        body: jobRequestSchema,
        response: { 201: jobSchema, ...errorResponses(400, 401, 404, 413, 415, 503) },
      },
    },
    async (request, reply) => {
      const { jobs, datasetsDir, registry } = need();
      const base = baseBundle(registry, request.body.base_model);
      const spec = buildJobSpec(request.body, { datasetsRoot: datasetsDir, baseModel: { fingerprint: base.fingerprint, dir: base.dir, name: base.name } });
      void reply.code(201);
      return publicView(jobs.create(spec));
    },
  );

  app.get(
    '/train-jobs',
    {
      schema: {
        tags: ['training'],
        summary: 'Training jobs, newest first',
        querystring: jobListQuerySchema,
        response: { 200: Type.Object({ jobs: Type.Array(jobSchema) }), ...errorResponses(400, 401, 503) },
      },
    },
    async (request) => {
      const { jobs } = need();
      return { jobs: jobs.list({ ...(request.query.state && { state: request.query.state }), limit: request.query.limit ?? 100 }).map(publicView) };
    },
  );

  app.get(
    '/train-jobs/:id',
    { schema: { tags: ['training'], summary: 'One training job with its progress', params: jobParamsSchema, response: { 200: jobSchema, ...errorResponses(400, 401, 404, 503) } } },
    async (request): Promise<TrainJob> => {
      const { jobs } = need();
      const job = jobs.get(request.params.id);
      if (!job) throw notFound(request.params.id);
      return publicView(job);
    },
  );

  app.delete(
    '/train-jobs/:id',
    {
      schema: {
        tags: ['training'],
        summary: 'Cancel a job: at once when queued, at the next progress report when running',
        params: jobParamsSchema,
        response: { 200: jobSchema, ...errorResponses(400, 401, 404, 503) },
      },
    },
    async (request) => {
      const { jobs } = need();
      const job = jobs.cancel(request.params.id);
      if (!job) throw notFound(request.params.id);
      return publicView(job);
    },
  );
};
