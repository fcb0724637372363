/** POST /encode: texts → embeddings at the requested precision. */
import type { FastifyPluginAsync } from 'fastify';
import { type InputType, namesBundle } from '../../encoder/bundle.js';
import type { Encoder } from '../../encoder/encoder.js';
import { embedTexts } from '../../embedding/embed.js';
import { errors } from '../../errors.js';
import { bytesPerVector, PRECISIONS, type Precision } from '../../quantization/quantize.js';
import { ENCODINGS, serializeVector, type VectorEncoding } from '../../quantization/serialize.js';
import { errorResponses } from '../schemas/errors.js';
import { modelRefSchema } from '../schemas/models.js';
import { type EncodeLimits, textSchema } from '../schemas/texts.js';

interface EncodeBody {
  inputs: string | string[];
  input_type?: InputType;
  precision?: Precision;
  encoding?: VectorEncoding;
  truncate?: boolean;
  model?: string;
  dimensions?: number;
}

export function encodeBodySchema(limits: EncodeLimits) {
  const text = textSchema(limits.maxInputChars);
  return {
    type: 'object',
    additionalProperties: false,
    required: ['inputs'],
    properties: {
      inputs: {
        description: `One text, or a list of 1 to ${limits.maxInputs} texts (each 1 to ${limits.maxInputChars} characters).`,
        oneOf: [text, { type: 'array', minItems: 1, maxItems: limits.maxInputs, items: text }],
      },
      input_type: {
        type: 'string',
        enum: ['query', 'document'],
        default: 'document',
        description: "Applies the model's prompt for queries or documents (see GET /health → model.prompts).",
      },
      precision: { type: 'string', enum: PRECISIONS, default: 'float32', description: 'Output precision; int8/uint8 use the bundle calibration ranges, binary/ubinary pack sign bits.' },
      encoding: {
        type: 'string',
        enum: ENCODINGS,
        default: 'json',
        description: '`json`: arrays of numbers; `base64`: the exact packed bytes of each vector (float32 little-endian).',
      },
      truncate: {
        type: 'boolean',
        default: true,
        description: "Cut texts past the model's max tokens (reported in usage.truncated_inputs); false answers 413 instead.",
      },
      model: { type: 'string', description: 'Optional: the model fingerprint or name you expect; 409 QEMBED_MODEL_MISMATCH if another model is served (as /search answers for a collection of another model).' },
      dimensions: {
        type: 'integer',
        description:
          "Keep the first N dimensions (Matryoshka), renormalized to unit length, before quantizing: int8/uint8 use those dimensions' calibration ranges, binary/ubinary need a multiple of 8. Default: the model's dimension. Above it or below 1: 400 QEMBED_INVALID_DIMENSIONS",
      },
    },
  } as const;
}

const encodeResponseSchema = {
  type: 'object',
  required: ['model', 'input_type', 'precision', 'encoding', 'dimension', 'bytes_per_vector', 'embeddings', 'usage'],
  properties: {
    model: modelRefSchema,
    input_type: { type: 'string', enum: ['query', 'document'] },
    precision: { type: 'string', enum: PRECISIONS },
    encoding: { type: 'string', enum: ENCODINGS },
    dimension: { type: 'integer', description: 'Dimensions of each vector (the dimensions asked for, else the model\'s)' },
    bytes_per_vector: { type: 'integer', description: 'Bytes of one vector at this precision' },
    embeddings: {
      type: 'array',
      description: 'One per input, in order: an array of numbers (json) or a base64 string (base64).',
      items: { anyOf: [{ type: 'array', items: { type: 'number' } }, { type: 'string', format: 'byte' }] },
    },
    usage: {
      type: 'object',
      required: ['input_tokens', 'truncated_inputs'],
      properties: {
        input_tokens: { type: 'integer', description: 'Tokens fed to the model, prompts and special tokens included' },
        truncated_inputs: { type: 'array', items: { type: 'integer' }, description: 'Indices of the inputs cut at the max tokens' },
      },
    },
  },
} as const;

export const encodeRoutes: FastifyPluginAsync<{ encoder: () => Encoder; limits: EncodeLimits }> = async (app, deps) => {
  app.post<{ Body: EncodeBody }>(
    '/encode',
    {
      schema: {
        tags: ['encode'],
        summary: 'Embed texts at a precision',
        body: encodeBodySchema(deps.limits),
        response: { 200: encodeResponseSchema, ...errorResponses(400, 401, 409, 413, 415, 429, 503) },
      },
    },
    async (request) => {
      const encoder = deps.encoder();
      const body = request.body;
      const { model } = body;
      const name = encoder.bundle.manifest.name;
      if (model !== undefined && !namesBundle(encoder.bundle, model)) {
        throw errors.modelMismatch(`model "${model}" is not served; this service serves ${name} (fingerprint ${encoder.fingerprint})`);
      }
      const texts = typeof body.inputs === 'string' ? [body.inputs] : body.inputs;
      const inputType = body.input_type ?? 'document';
      const precision = body.precision ?? 'float32';
      const encoding = body.encoding ?? 'json';
      const embedded = await embedTexts(encoder, { texts, inputType, truncate: body.truncate ?? true, dimensions: body.dimensions, precisions: [precision] });
      return {
        model: { name, fingerprint: encoder.fingerprint },
        input_type: inputType,
        precision,
        encoding,
        dimension: embedded.dimension,
        bytes_per_vector: bytesPerVector(precision, embedded.dimension),
        embeddings: embedded.vectors.get(precision)!.map((v) => serializeVector(v, encoding)),
        usage: {
          input_tokens: embedded.tokens.reduce((a, b) => a + b, 0),
          truncated_inputs: embedded.truncated,
        },
      };
    },
  );
};
