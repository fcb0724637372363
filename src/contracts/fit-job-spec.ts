/**
 * A transform fit as the service queues it and the worker runs it, declared once:
 * `npm run contracts` writes this schema to contracts/fit-job-spec.schema.json, which the worker
 * validates every fit job it claims against; the service validates every spec it queues with
 * the same object (jobs/fit-jobs.ts), and the TypeScript type is derived from it.
 */
import { type Static, Type } from 'typebox';

export const FIT_METHODS = ['itq', 'qat'] as const;
/** A fit job's id: also a folder name under `<data-dir>/fit-jobs/`, so no separators or dots. */
export const FIT_JOB_ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$';
// The job's files are relative to the data folder and can only name its fit-jobs/<id>/ folder:
// no absolute path, no `..`, so a spec cannot make the worker read or write elsewhere.
const JOB_FOLDER = 'fit-jobs/[A-Za-z0-9_-]{1,64}';

export const FitJobSpecSchema = Type.Object(
  {
    collection: Type.String({ minLength: 1, maxLength: 64, description: 'The collection\'s name (for listing; the worker never opens the collection).' }),
    collection_id: Type.Integer({ minimum: 1, description: 'The collection\'s id, so a collection deleted and created again under the same name does not take this fit.' }),
    model: Type.String({ pattern: '^[0-9a-f]{16}$', description: 'The fingerprint of the bundle the codes came from; the worker refuses a bundle whose manifest says otherwise.' }),
    bundle: Type.String({ pattern: '^/', description: 'The bundle\'s absolute folder: its manifest\'s calibration ranges dequantize the codes.' }),
    sample: Type.String({ pattern: `^${JOB_FOLDER}/codes\\.npy$`, description: 'The sample of int8 codes (documents x dimensions .npy), written by the service before it queues the job; relative to the data folder.' }),
    out: Type.String({ pattern: `^${JOB_FOLDER}/transform$`, description: 'The qembed.transform/v1 folder the worker writes; relative to the data folder.' }),
    bits: Type.Array(Type.Integer({ minimum: 8, maximum: 4096, multipleOf: 8 }), { minItems: 1, maxItems: 4, uniqueItems: true, description: 'The code lengths to fit.' }),
    method: Type.Enum(FIT_METHODS, { description: '`itq`: the post-training baseline; `qat`: trained from ITQ (ITQ is fitted and evaluated too).' }),
    seed: Type.Integer({ minimum: 0, maximum: 2_147_483_647, description: 'Seeds the held-out split, ITQ\'s starting rotation and QAT\'s batches.' }),
    holdout: Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Sampled documents taken out of the fit and searched as queries by the evaluation.' }),
    steps: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'QAT optimizer steps (default: the worker\'s, 600).' })),
    threads: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 64, description: 'torch threads for the fit (default: the worker\'s QEMBED_FIT_THREADS, else 1: the service shares the machine).' }),
    ),
  },
  {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'https://qembed.dev/contracts/fit-job-spec.schema.json',
    title: 'qembed transform fit job spec',
    description:
      'A collection\'s transform fit as the service stores it in jobs.sqlite (table fit_jobs) and the worker runs it ' +
      '(python -m qembed_worker work). Generated from src/contracts/fit-job-spec.ts by `npm run contracts`. The service validates ' +
      'each spec before queueing it; the worker validates each spec it claims before running it, and fails the job with the ' +
      'schema\'s message otherwise.',
    additionalProperties: false,
  },
);

export type FitJobSpec = Static<typeof FitJobSpecSchema>;
