/**
 * A training job as the service queues it and the worker runs it, declared once:
 * `npm run contracts` writes this schema to contracts/train-job-spec.schema.json, which the
 * worker validates every job it claims against; the service validates every spec it builds
 * with the same object (jobs/job-spec.ts), and the TypeScript type is derived from it.
 */
import { type Static, Type } from 'typebox';

export const TRAIN_MODES = ['head', 'full'] as const;
export const TRAIN_LOSSES = ['distill', 'mnrl'] as const;
export const TRAIN_PRECISIONS = ['float32', 'int8', 'binary'] as const;
/** A bundle name a job may give: also the stem of its folder. */
export const BUNDLE_NAME_PATTERN = '^[A-Za-z0-9_.-]{1,64}$';

export const TrainJobSpecSchema = Type.Object(
  {
    dataset: Type.String({ minLength: 1, description: 'The dataset folder as the client named it, relative to the datasets root.' }),
    dataset_path: Type.String({ minLength: 1, description: 'Its resolved absolute folder (a BEIR collection: corpus.jsonl, optionally queries.jsonl and qrels/).' }),
    mode: Type.Enum(TRAIN_MODES, { description: '`head`: a small head on the frozen encoder; `full`: the whole encoder.' }),
    loss: Type.Enum(TRAIN_LOSSES, { description: '`distill`: label-free self-distillation on the corpus; `mnrl`: contrastive on queries + qrels.' }),
    precisions: Type.Array(Type.Enum(TRAIN_PRECISIONS), { minItems: 1, maxItems: 3, uniqueItems: true }),
    weights: Type.Array(Type.Number({ minimum: 0, maximum: 100 }), { minItems: 1, maxItems: 3, description: 'One weight per precision, at least one positive.' }),
    steps: Type.Union([Type.Integer({ minimum: 1, maximum: 1_000_000 }), Type.Null()], { description: 'Exact number of steps, or null: `epochs` passes over the data.' }),
    epochs: Type.Integer({ minimum: 1, maximum: 10_000 }),
    batch_size: Type.Integer({ minimum: 2, maximum: 4096 }),
    learning_rate: Type.Number({ exclusiveMinimum: 0, maximum: 1 }),
    seed: Type.Integer({ minimum: 0, maximum: 2_147_483_647 }),
    asymmetric: Type.Boolean({ description: 'Keep queries float32 and quantize documents only (what the service serves).' }),
    crop_queries: Type.Boolean({ description: 'Self-distillation also on short query-like crops of the corpus (the recipe of docs/qat.md).' }),
    base_model: Type.Object(
      {
        fingerprint: Type.String({ pattern: '^[0-9a-f]{16}$' }),
        dir: Type.String({ minLength: 1, description: 'The base bundle\'s folder on the machine the worker shares with the service.' }),
        name: Type.String({ minLength: 1 }),
      },
      { additionalProperties: false },
    ),
    output_name: Type.String({
      pattern: BUNDLE_NAME_PATTERN,
      description: 'The new bundle\'s name: its manifest `name` (what requests send as `model`) and the stem of its folder.',
    }),
  },
  {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'https://qembed.dev/contracts/train-job-spec.schema.json',
    title: 'qembed training job spec',
    description:
      'A training job as the service stores it in jobs.sqlite (POST /train-jobs, every default filled in) and the worker runs it ' +
      '(python -m qembed_worker work). Generated from src/contracts/train-job-spec.ts by `npm run contracts`. The service validates ' +
      'each spec it builds against it before queueing it; the worker validates each spec it claims before running it, and fails ' +
      'the job with the schema\'s message otherwise.',
    additionalProperties: false,
  },
);

export type TrainJobSpec = Static<typeof TrainJobSpecSchema>;
