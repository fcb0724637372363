/**
 * The OpenAI-compatible API under /v1: POST /v1/embeddings, GET /v1/models(/{id}), for clients
 * that speak OpenAI's embeddings API (the official SDKs with base_url pointed here, LangChain,
 * LlamaIndex, vector-database integrations). Requests and answers take OpenAI's shapes, errors
 * included ({"error": {"message", "type", "param", "code"}}); the embedding itself is /encode's
 * (embedding/embed.ts). Extensions, as extra body fields: `precision` and `input_type`.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import { Type } from 'typebox';
import { INPUT_TYPES } from '../../encoder/bundle.js';
import type { Encoder } from '../../encoder/encoder.js';
import { embedTexts } from '../../embedding/embed.js';
import { errors, type QembedError } from '../../errors.js';
import { embeddingModels } from '../../models/embedding-models.js';
import type { ModelRegistry } from '../../models/registry.js';
import { PRECISIONS } from '../../quantization/quantize.js';
import { serializeVector } from '../../quantization/serialize.js';
import { answerErrorsAs, headersOf } from '../error-handler.js';
import { COMPAT_MAX_INPUTS, compatRequest } from '../compat-inputs.js';
import { enumCode, withFieldErrors } from '../schemas/field-errors.js';
import { Nullable, StringEnum } from '../schemas/json.js';
import type { EncodeLimits } from '../schemas/texts.js';

/** OpenAI's error `type` for a status. */
function errorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

export function openaiError(reply: FastifyReply, q: QembedError): void {
  void reply
    .code(q.statusCode)
    .headers(headersOf(q))
    .send({ error: { message: q.message, type: errorType(q.statusCode), param: q.details.field ?? null, code: q.code } });
}

const openaiErrorSchema = (description: string) =>
  Type.Object(
    {
      error: Type.Object({
        message: Type.String(),
        type: Type.String({ description: 'invalid_request_error, authentication_error, not_found_error, rate_limit_error or server_error' }),
        param: Nullable(Type.String({ description: 'The request field at fault, when one is' })),
        code: Type.String({ description: "qembed's stable error code (QEMBED_...)" }),
      }),
    },
    { description },
  );
function openaiErrors<const S extends number>(...statuses: S[]) {
  return Object.fromEntries(statuses.map((s) => [s, openaiErrorSchema(`OpenAI-shaped error (${errorType(s)})`)])) as Record<S, ReturnType<typeof openaiErrorSchema>>;
}

const modelObject = Type.Object({
  id: Type.String({ description: "The bundle's name (its fingerprint when two bundles share a name)" }),
  object: StringEnum(['model']),
  created: Type.Integer({ description: 'Unix seconds the bundle was made' }),
  owned_by: Type.String(),
  fingerprint: Type.Optional(Type.String()),
  dimension: Type.Optional(Type.Integer()),
  active: Type.Optional(Type.Boolean({ description: 'Served now: the only model /v1/embeddings embeds with' })),
});

const embeddingsBodySchema = Type.Object(
  {
    input: Type.Unknown({ description: 'A text or a list of texts (token id arrays are refused: this server tokenizes itself)' }),
    model: Type.String({ description: "The served model's name or fingerprint" }),
    encoding_format: Type.Optional(
      StringEnum(['float', 'base64'], { default: 'float', description: 'float: arrays of numbers; base64: little-endian float32 bytes (what the official SDKs ask for and decode)' }),
    ),
    dimensions: Type.Optional(Type.Integer({ description: 'Keep the first N dimensions, renormalized (Matryoshka); 1 to the model dimension' })),
    user: Type.Optional(Type.String({ description: 'Accepted and ignored' })),
    precision: Type.Optional(
      withFieldErrors(StringEnum(PRECISIONS, { default: 'float32', description: 'qembed extension: the precision of the embeddings' }), enumCode(errors.unknownPrecision)),
    ),
    input_type: Type.Optional(
      withFieldErrors(
        StringEnum(INPUT_TYPES, { default: 'document', description: "qembed extension: which of the model's prompts to prepend" }),
        enumCode(errors.unknownInputType),
      ),
    ),
  },
  { additionalProperties: false },
);

const embeddingsResponseSchema = Type.Object({
  object: StringEnum(['list']),
  data: Type.Array(
    Type.Object({
      object: StringEnum(['embedding']),
      index: Type.Integer(),
      embedding: Type.Union([Type.Array(Type.Number()), Type.String({ format: 'byte' })]),
    }),
  ),
  model: Type.String(),
  usage: Type.Object({ prompt_tokens: Type.Integer(), total_tokens: Type.Integer() }),
});

export interface OpenAiDeps {
  encoder: () => Encoder;
  limits: EncodeLimits;
  registry?: ModelRegistry;
}

export const openaiRoutes: FastifyPluginAsyncTypebox<OpenAiDeps> = async (app, deps) => {
  answerErrorsAs(app, openaiError);

  /** What /v1/embeddings accepts, in OpenAI's shape. */
  const models = () =>
    embeddingModels(deps.encoder(), deps.registry?.list()).map((m) => ({
      id: m.id,
      object: 'model' as const,
      created: m.createdAt ? Math.floor(Date.parse(m.createdAt) / 1000) : 0,
      owned_by: 'qembed',
      fingerprint: m.fingerprint,
      dimension: m.dimension,
      active: true,
    }));

  app.get(
    '/models',
    {
      schema: {
        tags: ['openai'],
        summary: 'The models /v1/embeddings embeds with (the one served), as OpenAI lists models',
        response: { 200: Type.Object({ object: StringEnum(['list']), data: Type.Array(modelObject) }), ...openaiErrors(401, 503) },
      },
    },
    async () => ({ object: 'list' as const, data: models() }),
  );

  app.get(
    '/models/:id',
    {
      schema: {
        tags: ['openai'],
        summary: 'The served model by name or fingerprint, as OpenAI retrieves a model',
        params: Type.Object({ id: Type.String() }),
        response: { 200: modelObject, ...openaiErrors(400, 401, 404, 503) },
      },
    },
    async (request) => {
      const { id } = request.params;
      const found = models().find((m) => m.id === id || m.fingerprint === id);
      if (!found) throw errors.modelNotFound(`the model "${id}" is not served here; GET /v1/models lists the one this service embeds with`, { field: 'model' });
      return found;
    },
  );

  app.post(
    '/embeddings',
    {
      schema: {
        tags: ['openai'],
        summary: 'OpenAI-compatible embeddings',
        description:
          `OpenAI's embeddings request and answer. \`model\` is the served model's name or fingerprint (GET /v1/models). Up to ${COMPAT_MAX_INPUTS} texts, embedded in batches of QEMBED_MAX_INPUTS. ` +
          "Extensions: `precision` (float32, int8, uint8, binary, ubinary; other than float32, embeddings are arrays of integers whatever encoding_format says, so that SDKs which decode base64 as float32 cannot misread them) and `input_type` (query or document, default document: the model's prompts).",
        body: embeddingsBodySchema,
        response: {
          200: embeddingsResponseSchema,
          ...openaiErrors(400, 401, 404, 413, 415, 429, 503),
        },
      },
    },
    async (request) => {
      const body = request.body;
      const { encoder, texts } = compatRequest(deps.encoder(), body.model, body.input, 'input', deps.limits.maxInputChars);
      const precision = body.precision ?? 'float32';
      const base64 = (body.encoding_format ?? 'float') === 'base64' && precision === 'float32';
      const result = await embedTexts(encoder, {
        texts,
        inputType: body.input_type ?? 'document',
        truncate: true,
        dimensions: body.dimensions,
        precisions: [precision],
        batchSize: deps.limits.maxInputs,
      });
      const tokens = result.tokens.reduce((a, b) => a + b, 0);
      return {
        object: 'list' as const,
        data: result.vectors.get(precision)!.map((v, index) => ({ object: 'embedding' as const, index, embedding: serializeVector(v, base64 ? 'base64' : 'json') })),
        model: encoder.bundle.manifest.name,
        usage: { prompt_tokens: tokens, total_tokens: tokens },
      };
    },
  );
};
