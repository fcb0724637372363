/** Model bundles: list them, and switch the served one without dropping requests. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errors } from '../../errors.js';
import type { Activation } from '../../models/activation.js';
import type { ModelRegistry } from '../../models/registry.js';
import { errorResponses } from '../schemas/errors.js';
import { JsonObject, Nullable } from '../schemas/json.js';
import { modelRefSchema } from '../schemas/models.js';

const modelSchema = Type.Object({
  name: Type.String(),
  fingerprint: Type.String({ description: 'Empty when the folder is not a valid bundle (see problem)' }),
  dir: Type.String({ description: "Bundle folder, relative to the models folder (QEMBED_MODELS_DIR); a bundle served from elsewhere shows its folder's name only" }),
  source: Type.Optional(JsonObject({ description: 'Where the weights came from (manifest source)' })),
  dimension: Type.Optional(Type.Integer()),
  binary_code_bits: Type.Optional(
    Type.Array(Type.Integer(), {
      description: 'Binary code lengths the model supports, longest first (a collection picks one as code_bits): the signs of the first N dimensions',
    }),
  ),
  weights: Type.Optional(Type.String({ description: 'Precision of the model weights' })),
  created_at: Type.Optional(Nullable(Type.String())),
  training: Type.Optional(Nullable(JsonObject({ description: 'Training run summary, for QAT bundles' }))),
  evaluation: Type.Optional(
    Nullable(
      JsonObject<object>({
        description:
          "Evaluation figures: the manifest's, else those `qembed eval --record` kept in the bundle's evaluation.json ({fingerprint, datasets: {name: {float32_ndcg@10, binary+int8@4_retention, ...}}})",
      }),
    ),
  ),
  active: Type.Boolean({ description: 'Serves new requests' }),
  loaded: Type.Boolean({ description: 'Loaded in memory (the active model, or one kept while collections are re-encoded)' }),
  problem: Type.Optional(Type.String({ description: 'Why the folder cannot be served' })),
});

export interface ModelsDeps {
  models?: { registry: ModelRegistry; activation: Activation };
}

export const modelRoutes: FastifyPluginAsyncTypebox<ModelsDeps> = async (app, deps) => {
  const need = () => {
    if (!deps.models) throw errors.unavailable('model management is not configured in this process');
    return deps.models;
  };

  app.get(
    '/models',
    {
      schema: {
        tags: ['models'],
        summary: 'Model bundles in the models folder, with their evaluation figures',
        response: { 200: Type.Object({ models: Type.Array(modelSchema) }), ...errorResponses(401, 503) },
      },
    },
    async () => {
      const { registry } = need();
      // No absolute server paths in answers: folders are named relative to the models folder.
      return { models: registry.list().map((m) => ({ ...m, dir: registry.displayDir(m.dir) })) };
    },
  );

  app.post(
    '/models/:fingerprint/activate',
    {
      schema: {
        tags: ['models'],
        summary: 'Serve another bundle; collections bound to the old one are re-encoded in the background',
        params: Type.Object({ fingerprint: Type.String({ pattern: '^[0-9a-f]{16}$' }) }),
        response: {
          200: Type.Object({
            previous: modelRefSchema,
            current: modelRefSchema,
            reencoding: Type.Array(Type.Object({ collection: Type.Optional(Type.String()), documents: Type.Optional(Type.Integer()) }), {
              description: 'Collections being re-encoded (progress: GET /collections/{name} → reencode)',
            }),
          }),
          ...errorResponses(400, 401, 404, 409, 503),
        },
      },
    },
    async (request) => need().activation.activate(request.params.fingerprint),
  );
};
