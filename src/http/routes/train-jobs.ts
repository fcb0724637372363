/** Training jobs: queued here, claimed and run by a worker process (python -m qembed_worker work). */
import path from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import { errors } from '../../errors.js';
import { buildJobSpec, TRAIN_LOSSES, TRAIN_MODES, TRAIN_PRECISIONS, type TrainJobRequest } from '../../jobs/job-spec.js';
import { JOB_STATES, type JobState, type TrainJob, type TrainJobs } from '../../jobs/train-jobs.js';
import type { ModelRegistry } from '../../models/registry.js';
import { errorResponses } from '../schemas/errors.js';

export interface TrainJobsDeps {
  jobs?: { jobs: TrainJobs; datasetsDir: string };
  registry?: ModelRegistry;
}

const jobSchema = {
  type: 'object',
  required: ['id', 'state', 'spec', 'created_at', 'progress'],
  properties: {
    id: { type: 'string' },
    state: { type: 'string', enum: JOB_STATES },
    spec: { type: 'object', additionalProperties: true, description: 'The job as the worker runs it, defaults filled in' },
    created_at: { type: 'string' },
    started_at: { type: 'string', nullable: true },
    finished_at: { type: 'string', nullable: true },
    worker: { type: 'string', nullable: true, description: 'The worker that claimed the job' },
    lease_expires_at: { type: 'string', nullable: true, description: 'A running job whose worker does not report before this is marked failed' },
    progress: { type: 'number', description: 'From 0 to 1' },
    step: { type: 'integer', nullable: true },
    total_steps: { type: 'integer', nullable: true },
    loss: { type: 'number', nullable: true },
    message: { type: 'string', nullable: true, description: 'Last status line, or why the job failed' },
    cancel_requested: { type: 'boolean' },
    result: { type: 'object', nullable: true, additionalProperties: true, description: 'The new bundle (fingerprint, dir) and its figures' },
  },
} as const;

const jobRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['dataset'],
  properties: {
    dataset: { type: 'string', minLength: 1, maxLength: 512, description: 'BEIR dataset folder, relative to the datasets root (QEMBED_DATASETS_DIR)' },
    mode: { type: 'string', enum: TRAIN_MODES, description: '`head`: a small head on the frozen encoder (minutes on a CPU); `full`: the whole encoder (GPU)' },
    loss: { type: 'string', enum: TRAIN_LOSSES, description: '`distill`: label-free self-distillation on the corpus; `mnrl`: contrastive on queries + qrels' },
    precisions: { type: 'array', minItems: 1, maxItems: 3, items: { type: 'string', enum: TRAIN_PRECISIONS }, description: 'Precisions in the loss' },
    weights: { type: 'array', minItems: 1, maxItems: 3, items: { type: 'number', minimum: 0, maximum: 100 }, description: 'One weight per precision' },
    steps: { type: 'integer', minimum: 1, maximum: 1_000_000, description: 'Exact number of training steps (default: `epochs` passes over the data)' },
    epochs: { type: 'integer', minimum: 1, maximum: 10_000, description: 'Passes over the data when `steps` is not given (default 20 for head, 1 for full)' },
    batch_size: { type: 'integer', minimum: 2, maximum: 4096 },
    learning_rate: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
    seed: { type: 'integer', minimum: 0, maximum: 2 ** 31 - 1 },
    asymmetric: { type: 'boolean', description: 'Keep queries float32 and quantize documents only (what the service serves)' },
    base_model: { type: 'string', description: 'Fingerprint or name of the bundle to start from (default: the active one)' },
    name: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$', description: 'Name of the new bundle' },
  },
} as const;

/**
 * A job as answers show it: without the absolute server paths the worker needs (the dataset's
 * resolved folder, the bundle folders), named by what the client sent or by fingerprint.
 */
function publicView(job: TrainJob): TrainJob {
  const { dataset_path: _path, base_model, ...spec } = job.spec as TrainJob['spec'] & { dataset_path?: string };
  const result = job.result && typeof job.result === 'object' && 'dir' in job.result ? { ...job.result, dir: path.basename(String(job.result.dir)) } : job.result;
  return { ...job, spec: { ...spec, base_model: { fingerprint: base_model.fingerprint, name: base_model.name } }, result } as TrainJob;
}

export const trainJobRoutes: FastifyPluginAsync<TrainJobsDeps> = async (app, deps) => {
  const need = () => {
    if (!deps.jobs || !deps.registry) throw errors.unavailable('training jobs are not configured in this process');
    return { ...deps.jobs, registry: deps.registry };
  };
  const notFound = (id: string) => errors.jobNotFound(`no training job ${JSON.stringify(id)}`);
  const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 64 } } } as const;

  app.post<{ Body: TrainJobRequest }>(
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
      const wanted = request.body.base_model;
      const models = registry.list().filter((m) => m.fingerprint);
      const base = wanted === undefined ? models.find((m) => m.active) : models.find((m) => m.fingerprint === wanted || m.name === wanted);
      if (!base) throw errors.modelNotFound(`no bundle ${JSON.stringify(wanted)} to start from (GET /models lists them)`);
      const spec = buildJobSpec(request.body, { datasetsRoot: datasetsDir, baseModel: { fingerprint: base.fingerprint, dir: base.dir, name: base.name } });
      void reply.code(201);
      return publicView(jobs.create(spec));
    },
  );

  app.get<{ Querystring: { state?: JobState; limit?: number } }>(
    '/train-jobs',
    {
      schema: {
        tags: ['training'],
        summary: 'Training jobs, newest first',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { state: { type: 'string', enum: JOB_STATES }, limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
        },
        response: { 200: { type: 'object', required: ['jobs'], properties: { jobs: { type: 'array', items: jobSchema } } }, ...errorResponses(400, 401, 503) },
      },
    },
    async (request) => {
      const { jobs } = need();
      jobs.reapExpired();
      return { jobs: jobs.list({ ...(request.query.state && { state: request.query.state }), limit: request.query.limit ?? 100 }).map(publicView) };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/train-jobs/:id',
    { schema: { tags: ['training'], summary: 'One training job with its progress', params: idParams, response: { 200: jobSchema, ...errorResponses(400, 401, 404, 503) } } },
    async (request): Promise<TrainJob> => {
      const { jobs } = need();
      jobs.reapExpired();
      const job = jobs.get(request.params.id);
      if (!job) throw notFound(request.params.id);
      return publicView(job);
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/train-jobs/:id',
    {
      schema: {
        tags: ['training'],
        summary: 'Cancel a job: at once when queued, at the next progress report when running',
        params: idParams,
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
