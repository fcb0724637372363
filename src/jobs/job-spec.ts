/**
 * Training job specifications as the API accepts them: validated here, before anything is
 * queued, so the worker only ever sees runnable jobs. The dataset must be a folder inside the
 * configured datasets root (no escaping it through `..` or symbolic links).
 */
import { existsSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { TRAIN_LOSSES, TRAIN_MODES, TRAIN_PRECISIONS, type TrainJobSpec, TrainJobSpecSchema } from '../contracts/train-job-spec.js';
import { errors } from '../errors.js';

export { BUNDLE_NAME_PATTERN, TRAIN_LOSSES, TRAIN_MODES, TRAIN_PRECISIONS, type TrainJobSpec } from '../contracts/train-job-spec.js';

const checkSpec = new Ajv({ allErrors: false, strict: false }).compile<TrainJobSpec>(TrainJobSpecSchema);

/** What a job is built from: POST /train-jobs' body once its schema passed (http/routes/train-jobs.ts, which the compiler checks against this). */
export interface TrainJobRequest {
  dataset: string;
  mode?: (typeof TRAIN_MODES)[number];
  loss?: (typeof TRAIN_LOSSES)[number];
  precisions?: (typeof TRAIN_PRECISIONS)[number][];
  weights?: number[];
  steps?: number;
  epochs?: number;
  batch_size?: number;
  learning_rate?: number;
  seed?: number;
  asymmetric?: boolean;
  base_model?: string;
  name?: string;
}

const invalid = (message: string) => errors.invalidJob(message);

/** Resolves `dataset` inside `root`, refusing anything that lands outside it. */
export function resolveDataset(root: string, dataset: string): string {
  if (path.isAbsolute(dataset)) throw errors.pathOutsideRoot(`dataset must be a path relative to the datasets root, not ${JSON.stringify(dataset)}`);
  const rootReal = existsSync(root) ? realpathSync(root) : path.resolve(root);
  const candidate = path.resolve(rootReal, dataset);
  const inside = (p: string) => p === rootReal || p.startsWith(rootReal + path.sep);
  if (!inside(candidate)) throw errors.pathOutsideRoot(`dataset ${JSON.stringify(dataset)} is outside the datasets root`);
  if (!existsSync(candidate) || !statSync(candidate).isDirectory()) {
    throw errors.datasetNotFound(`no dataset folder ${JSON.stringify(dataset)} under the datasets root`);
  }
  const real = realpathSync(candidate);
  if (!inside(real)) throw errors.pathOutsideRoot(`dataset ${JSON.stringify(dataset)} links outside the datasets root`);
  if (!existsSync(path.join(real, 'corpus.jsonl'))) throw invalid(`dataset ${JSON.stringify(dataset)} has no corpus.jsonl (BEIR format expected)`);
  return real;
}

export function buildJobSpec(
  request: TrainJobRequest,
  ctx: { datasetsRoot: string; baseModel: { fingerprint: string; dir: string; name: string } },
): TrainJobSpec {
  const datasetPath = resolveDataset(ctx.datasetsRoot, request.dataset);
  const mode = request.mode ?? 'head';
  const hasQrels = existsSync(path.join(datasetPath, 'qrels')) && existsSync(path.join(datasetPath, 'queries.jsonl'));
  const loss = request.loss ?? 'distill';
  if (loss === 'mnrl' && !hasQrels) throw invalid(`loss "mnrl" needs queries.jsonl and qrels/ in the dataset; use "distill" for a corpus alone`);
  const precisions = request.precisions ?? ['float32', 'int8', 'binary'];
  if (new Set(precisions).size !== precisions.length) throw invalid('precisions must not repeat');
  const weights = request.weights ?? precisions.map(() => 1);
  if (weights.length !== precisions.length) throw invalid(`weights (${weights.length}) must match precisions (${precisions.length}) one to one`);
  if (weights.every((w) => w === 0)) throw invalid('at least one weight must be positive');
  const spec: TrainJobSpec = {
    dataset: request.dataset,
    dataset_path: datasetPath,
    mode,
    loss,
    precisions,
    weights,
    steps: request.steps ?? null,
    epochs: request.epochs ?? (mode === 'head' ? 20 : 1),
    batch_size: request.batch_size ?? (mode === 'head' ? 256 : 32),
    learning_rate: request.learning_rate ?? (mode === 'head' ? 1e-3 : 2e-5),
    seed: request.seed ?? 0,
    asymmetric: request.asymmetric ?? false,
    crop_queries: loss === 'distill',
    base_model: ctx.baseModel,
    output_name: request.name ?? `${ctx.baseModel.name}-qat-${mode}`,
  };
  // The contract the worker checks too (contracts/train-job-spec.schema.json): what passes here runs there.
  if (!checkSpec(spec)) {
    const e = checkSpec.errors![0]!;
    throw invalid(`the job spec breaks the contract: ${e.instancePath.slice(1).replaceAll('/', '.') || 'spec'} ${e.message ?? 'is invalid'}`);
  }
  return spec;
}
