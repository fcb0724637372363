/**
 * GET /health: 200 when the model answers and the database accepts writes, 503 otherwise. It
 * also says which processor the encoder runs on and how the encoder was chosen.
 */
import type { FastifyPluginAsync } from 'fastify';
import { currentCpu, KERNEL_FEATURES } from '../../encoder/cpu.js';
import type { Encoder } from '../../encoder/encoder.js';
import type { ServedModel } from '../../models/encoder-choice.js';
import type { StorageState } from '../../store/store.js';

const candidateSchema = {
  type: 'object',
  properties: {
    dir: { type: 'string' },
    fingerprint: { type: 'string' },
    weights: { type: 'string' },
    texts_per_second: {
      type: ['object', 'null'],
      properties: { calls_of_1: { type: 'number' }, calls_of_32: { type: 'number' } },
    },
    agreement: {
      type: ['object', 'null'],
      properties: { mean_cosine: { type: 'number' }, min_cosine: { type: 'number' }, texts: { type: 'integer' }, reference: { type: 'string' } },
    },
    eligible: { type: 'boolean' },
    problem: { type: 'string' },
  },
} as const;

const healthSchema = {
  type: 'object',
  required: ['status', 'problems', 'queue_depth'],
  properties: {
    status: {
      type: 'string',
      enum: ['ok', 'degraded', 'unavailable'],
      description: 'degraded: searches work but writes are refused (the storage is full); unavailable (503): the model or the database is down, or the service is shutting down',
    },
    problems: { type: 'array', items: { type: 'string' } },
    model: {
      type: 'object',
      properties: {
        name: { type: 'string' },
        fingerprint: { type: 'string' },
        dimension: { type: 'integer' },
        max_tokens: { type: 'integer' },
        weights: { type: 'string', description: 'Precision of the model weights (float32, int8 …)' },
        prompts: { type: 'object', properties: { query: { type: 'string' }, document: { type: 'string' } } },
        execution_provider: { type: 'string', enum: ['cpu', 'cuda'] },
        chosen_by: {
          type: 'string',
          enum: ['measurement', 'configuration', 'activation'],
          description:
            'measurement: QEMBED_MODEL_DIR=auto chose the fastest candidate on this machine (see choice); configuration: QEMBED_MODEL_DIR names the bundle; activation: POST /models/{fingerprint}/activate changed it',
        },
        choice: {
          type: 'object',
          description: 'The measurement behind an automatic choice (QEMBED_MODELS_DIR/encoder-choice.json)',
          properties: {
            measured_at: { type: 'string' },
            rule: { type: 'string' },
            threads: { type: 'integer' },
            chosen: { type: 'object', properties: { dir: { type: 'string' }, fingerprint: { type: 'string' } } },
            candidates: { type: 'array', items: candidateSchema },
            kept: {
              type: 'object',
              properties: {
                reason: { type: 'string' },
                faster: { type: 'object', properties: { dir: { type: 'string' }, fingerprint: { type: 'string' }, ratio: { type: 'number' } } },
              },
            },
          },
        },
      },
    },
    cpu: {
      type: 'object',
      description: 'The processor the encoder runs on',
      properties: {
        model: { type: 'string' },
        arch: { type: 'string' },
        cpus: { type: 'integer' },
        features: { type: 'array', items: { type: 'string', enum: [...KERNEL_FEATURES] }, description: 'Instruction-set extensions that change onnxruntime kernels' },
        int8_kernel: {
          type: 'string',
          enum: ['dot-product', 'pairwise-int16', 'unknown'],
          description: 'How uint8 x int8 products are summed here (qembed int8 graphs are exact with either)',
        },
      },
    },
    queue_depth: { type: 'integer', description: 'Texts waiting for or inside the model' },
    database: { type: 'string', enum: ['ok', 'unavailable'] },
    storage: {
      type: 'object',
      description: 'Whether the database can grow: full after a write found no room, until one succeeds again',
      properties: { full: { type: 'boolean' }, since: { type: 'string', nullable: true }, message: { type: 'string', nullable: true } },
    },
  },
} as const;

export const healthRoutes: FastifyPluginAsync<{ encoder: () => Encoder; storage: StorageState; shuttingDown: () => boolean; served?: ServedModel }> = async (app, deps) => {
  app.get(
    '/health',
    { schema: { tags: ['health'], summary: 'Liveness and readiness', response: { 200: healthSchema, 503: healthSchema } } },
    async (_request, reply) => {
      const problems: string[] = [];
      const encoder = deps.encoder();
      if (!encoder.healthy()) problems.push('the model thread is not running');
      let database: 'ok' | 'unavailable' = 'ok';
      try {
        deps.storage.probeWritable();
      } catch (e) {
        database = 'unavailable';
        problems.push(`the database does not accept writes: ${(e as Error).message}`);
      }
      if (deps.shuttingDown()) problems.push('shutting down');
      const down = problems.length > 0;
      const storage = deps.storage;
      if (storage.storageStatus().full && !down) {
        try {
          storage.ensureRoom(); // a probe write: clears the condition once space is back
        } catch {
          // still full
        }
      }
      const full = storage.storageStatus();
      if (full.full) problems.push(`the storage is full since ${full.since}: writes answer 507 until disk space is freed (${full.message})`);
      const m = encoder.bundle.manifest;
      const cpu = currentCpu();
      void reply.code(down ? 503 : 200);
      return {
        status: down ? 'unavailable' : full.full ? 'degraded' : 'ok',
        problems,
        model: {
          name: m.name,
          fingerprint: encoder.fingerprint,
          dimension: encoder.dimension,
          max_tokens: encoder.maxTokens,
          weights: m.weights.precision,
          prompts: m.prompts,
          execution_provider: encoder.provider,
          ...encoderOrigin(encoder, deps.served),
        },
        cpu: { model: cpu.model, arch: cpu.arch, cpus: cpu.cpus, features: cpu.features, int8_kernel: cpu.int8Kernel },
        queue_depth: encoder.queueDepth(),
        database,
        storage: full,
      };
    },
  );
};

function encoderOrigin(encoder: Encoder, served: ServedModel | undefined) {
  if (!served) return {};
  if (served.fingerprint !== undefined && served.fingerprint !== encoder.fingerprint) return { chosen_by: 'activation' as const };
  if (served.chosenBy !== 'measurement' || !served.record) return { chosen_by: served.chosenBy };
  const { measured_at, rule, threads, chosen, candidates, kept } = served.record;
  return { chosen_by: 'measurement' as const, choice: { measured_at, rule, threads, chosen, candidates, ...(kept ? { kept } : {}) } };
}
