/**
 * GET /health: 200 when the model answers and the database accepts writes, 503 otherwise. It
 * also says which processor the encoder runs on and how the encoder was chosen.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { currentCpu, KERNEL_FEATURES } from '../../encoder/cpu.js';
import type { Encoder } from '../../encoder/encoder.js';
import { howChosen, type ServedModel } from '../../models/encoder-choice.js';
import { checkHealth } from '../../models/health.js';
import type { StorageState } from '../../store/store.js';
import { Nullable, StringEnum } from '../schemas/json.js';

const dirFingerprint = { dir: Type.Optional(Type.String()), fingerprint: Type.Optional(Type.String()) };

const candidateSchema = Type.Object({
  ...dirFingerprint,
  weights: Type.Optional(Type.String()),
  texts_per_second: Type.Optional(Nullable(Type.Object({ calls_of_1: Type.Optional(Type.Number()), calls_of_32: Type.Optional(Type.Number()) }))),
  agreement: Type.Optional(
    Nullable(
      Type.Object({
        mean_cosine: Type.Optional(Type.Number()),
        min_cosine: Type.Optional(Type.Number()),
        texts: Type.Optional(Type.Integer()),
        reference: Type.Optional(Type.String()),
      }),
    ),
  ),
  eligible: Type.Optional(Type.Boolean()),
  problem: Type.Optional(Type.String()),
});

const healthSchema = Type.Object({
  status: StringEnum(['ok', 'degraded', 'unavailable'], {
    description: 'degraded: searches work but writes are refused (the storage is full); unavailable (503): the model or the database is down, or the service is shutting down',
  }),
  problems: Type.Array(Type.String()),
  model: Type.Optional(
    Type.Object({
      name: Type.Optional(Type.String()),
      fingerprint: Type.Optional(Type.String()),
      dimension: Type.Optional(Type.Integer()),
      max_tokens: Type.Optional(Type.Integer()),
      weights: Type.Optional(Type.String({ description: 'Precision of the model weights (float32, int8 …)' })),
      prompts: Type.Optional(Type.Object({ query: Type.Optional(Type.String()), document: Type.Optional(Type.String()) })),
      execution_provider: Type.Optional(StringEnum(['cpu', 'cuda'])),
      chosen_by: Type.Optional(
        StringEnum(['measurement', 'configuration', 'activation'], {
          description:
            'measurement: QEMBED_MODEL_DIR=auto chose the fastest candidate on this machine (see choice); configuration: QEMBED_MODEL_DIR names the bundle; activation: POST /models/{fingerprint}/activate changed it',
        }),
      ),
      choice: Type.Optional(
        Type.Object(
          {
            measured_at: Type.Optional(Type.String()),
            rule: Type.Optional(Type.String()),
            threads: Type.Optional(Type.Integer()),
            chosen: Type.Optional(Type.Object(dirFingerprint)),
            candidates: Type.Optional(Type.Array(candidateSchema)),
            kept: Type.Optional(
              Type.Object({
                reason: Type.Optional(Type.String()),
                faster: Type.Optional(Type.Object({ ...dirFingerprint, ratio: Type.Optional(Type.Number()) })),
              }),
            ),
          },
          { description: 'The measurement behind an automatic choice (QEMBED_MODELS_DIR/encoder-choice.json)' },
        ),
      ),
    }),
  ),
  cpu: Type.Optional(
    Type.Object(
      {
        model: Type.Optional(Type.String()),
        arch: Type.Optional(Type.String()),
        cpus: Type.Optional(Type.Integer()),
        features: Type.Optional(Type.Array(StringEnum(KERNEL_FEATURES), { description: 'Instruction-set extensions that change onnxruntime kernels' })),
        int8_kernel: Type.Optional(
          StringEnum(['dot-product', 'pairwise-int16', 'unknown'], { description: 'How uint8 x int8 products are summed here (qembed int8 graphs are exact with either)' }),
        ),
      },
      { description: 'The processor the encoder runs on' },
    ),
  ),
  queue_depth: Type.Integer({ description: 'Texts waiting for or inside the model' }),
  database: Type.Optional(StringEnum(['ok', 'unavailable'])),
  storage: Type.Optional(
    Type.Object(
      { full: Type.Optional(Type.Boolean()), since: Type.Optional(Nullable(Type.String())), message: Type.Optional(Nullable(Type.String())) },
      { description: 'Whether the database can grow: full after a write found no room, until one succeeds again' },
    ),
  ),
});

export const healthRoutes: FastifyPluginAsyncTypebox<{ encoder: () => Encoder; storage: StorageState; shuttingDown: () => boolean; served?: ServedModel }> = async (app, deps) => {
  app.get(
    '/health',
    { schema: { tags: ['health'], summary: 'Liveness and readiness', response: { 200: healthSchema, 503: healthSchema } } },
    async (_request, reply) => {
      const encoder = deps.encoder();
      const health = checkHealth({ encoder, storage: deps.storage, shuttingDown: deps.shuttingDown() });
      const m = encoder.bundle.manifest;
      const cpu = currentCpu();
      void reply.code(health.status === 'unavailable' ? 503 : 200);
      return {
        status: health.status,
        problems: health.problems,
        model: {
          name: m.name,
          fingerprint: encoder.fingerprint,
          dimension: encoder.dimension,
          max_tokens: encoder.maxTokens,
          weights: m.weights.precision,
          prompts: m.prompts,
          execution_provider: encoder.provider,
          ...(deps.served && chosenView(howChosen(deps.served, encoder))),
        },
        cpu: { model: cpu.model, arch: cpu.arch, cpus: cpu.cpus, features: cpu.features, int8_kernel: cpu.int8Kernel },
        queue_depth: encoder.queueDepth(),
        database: health.database,
        storage: health.storage,
      };
    },
  );
};

function chosenView({ chosenBy, record }: ReturnType<typeof howChosen>) {
  if (!record) return { chosen_by: chosenBy };
  const { measured_at, rule, threads, chosen, candidates, kept } = record;
  return { chosen_by: chosenBy, choice: { measured_at, rule, threads, chosen, candidates, ...(kept ? { kept } : {}) } };
}
