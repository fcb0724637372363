/**
 * GET /health: 200 when the model answers and the database accepts writes, 503 otherwise. It
 * also says which processor the encoder runs on and how the encoder was chosen.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { currentCpu, KERNEL_FEATURES } from '../../encoder/cpu.js';
import type { Encoder } from '../../encoder/encoder.js';
import type { ServedModel } from '../../models/encoder-choice.js';
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
        status: down ? ('unavailable' as const) : full.full ? ('degraded' as const) : ('ok' as const),
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
