/** Model bundles: list them, and switch the served one without dropping requests. */
import type { FastifyPluginAsync } from 'fastify';
import { errors } from '../../errors.js';
import type { Activation } from '../../models/activation.js';
import type { ModelRegistry } from '../../models/registry.js';
import { errorResponses } from '../schemas/errors.js';
import { modelRefSchema } from '../schemas/models.js';

const modelSchema = {
  type: 'object',
  required: ['name', 'fingerprint', 'dir', 'active', 'loaded'],
  properties: {
    name: { type: 'string' },
    fingerprint: { type: 'string', description: 'Empty when the folder is not a valid bundle (see problem)' },
    dir: { type: 'string', description: "Bundle folder, relative to the models folder (QEMBED_MODELS_DIR); a bundle served from elsewhere shows its folder's name only" },
    source: { type: 'object', additionalProperties: true, description: 'Where the weights came from (manifest source)' },
    dimension: { type: 'integer' },
    binary_code_bits: {
      type: 'array',
      items: { type: 'integer' },
      description: 'Binary code lengths the model supports, longest first (a collection picks one as code_bits): the signs of the first N dimensions',
    },
    weights: { type: 'string', description: 'Precision of the model weights' },
    created_at: { type: 'string', nullable: true },
    training: { type: 'object', nullable: true, additionalProperties: true, description: 'Training run summary, for QAT bundles' },
    evaluation: { type: 'object', nullable: true, additionalProperties: true, description: "Evaluation figures: the manifest's, else those `qembed eval --record` kept in the bundle's evaluation.json ({fingerprint, datasets: {name: {float32_ndcg@10, binary+int8@4_retention, ...}}})" },
    active: { type: 'boolean', description: 'Serves new requests' },
    loaded: { type: 'boolean', description: 'Loaded in memory (the active model, or one kept while collections are re-encoded)' },
    problem: { type: 'string', description: 'Why the folder cannot be served' },
  },
} as const;

export interface ModelsDeps {
  models?: { registry: ModelRegistry; activation: Activation };
}

export const modelRoutes: FastifyPluginAsync<ModelsDeps> = async (app, deps) => {
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
        response: { 200: { type: 'object', required: ['models'], properties: { models: { type: 'array', items: modelSchema } } }, ...errorResponses(401, 503) },
      },
    },
    async () => {
      const { registry } = need();
      // No absolute server paths in answers: folders are named relative to the models folder.
      return { models: registry.list().map((m) => ({ ...m, dir: registry.displayDir(m.dir) })) };
    },
  );

  app.post<{ Params: { fingerprint: string } }>(
    '/models/:fingerprint/activate',
    {
      schema: {
        tags: ['models'],
        summary: 'Serve another bundle; collections bound to the old one are re-encoded in the background',
        params: { type: 'object', required: ['fingerprint'], properties: { fingerprint: { type: 'string', pattern: '^[0-9a-f]{16}$' } } },
        response: {
          200: {
            type: 'object',
            required: ['previous', 'current', 'reencoding'],
            properties: {
              previous: modelRefSchema,
              current: modelRefSchema,
              reencoding: {
                type: 'array',
                description: 'Collections being re-encoded (progress: GET /collections/{name} → reencode)',
                items: { type: 'object', properties: { collection: { type: 'string' }, documents: { type: 'integer' } } },
              },
            },
          },
          ...errorResponses(400, 401, 404, 409, 503),
        },
      },
    },
    async (request) => need().activation.activate(request.params.fingerprint),
  );
};
