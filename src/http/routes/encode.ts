/** POST /encode: texts → embeddings at the requested precision. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { INPUT_TYPES } from '../../encoder/bundle.js';
import type { Encoder } from '../../encoder/encoder.js';
import { embedTexts } from '../../embedding/embed.js';
import { errors } from '../../errors.js';
import { bytesPerVector, PRECISIONS } from '../../quantization/quantize.js';
import { ENCODINGS, serializeVector } from '../../quantization/serialize.js';
import { errorResponses } from '../schemas/errors.js';
import { OneOf, StringEnum } from '../schemas/json.js';
import { modelRefSchema } from '../schemas/models.js';
import { enumCode, withFieldErrors } from '../schemas/field-errors.js';
import { type EncodeLimits, inputListSchema, textSchema } from '../schemas/texts.js';

export function encodeBodySchema(limits: EncodeLimits) {
  const text = textSchema(limits.maxInputChars);
  return Type.Object(
    {
      inputs: OneOf([text, inputListSchema(text, limits.maxInputs)], {
        description: `One text, or a list of 1 to ${limits.maxInputs} texts (each 1 to ${limits.maxInputChars} characters).`,
      }),
      input_type: Type.Optional(
        withFieldErrors(
          StringEnum(INPUT_TYPES, { default: 'document', description: "Applies the model's prompt for queries or documents (see GET /health → model.prompts)." }),
          enumCode(errors.unknownInputType),
        ),
      ),
      precision: Type.Optional(
        withFieldErrors(
          StringEnum(PRECISIONS, { default: 'float32', description: 'Output precision; int8/uint8 use the bundle calibration ranges, binary/ubinary pack sign bits.' }),
          enumCode(errors.unknownPrecision),
        ),
      ),
      encoding: Type.Optional(
        withFieldErrors(
          StringEnum(ENCODINGS, { default: 'json', description: '`json`: arrays of numbers; `base64`: the exact packed bytes of each vector (float32 little-endian).' }),
          enumCode(errors.unknownEncoding),
        ),
      ),
      truncate: Type.Optional(
        Type.Boolean({ default: true, description: "Cut texts past the model's max tokens (reported in usage.truncated_inputs); false answers 413 instead." }),
      ),
      model: Type.Optional(
        Type.String({
          description:
            'Optional: the model fingerprint or name you expect; 409 QEMBED_MODEL_MISMATCH if another model is served (as /search answers for a collection of another model).',
        }),
      ),
      dimensions: Type.Optional(
        Type.Integer({
          description:
            "Keep the first N dimensions (Matryoshka), renormalized to unit length, before quantizing: int8/uint8 use those dimensions' calibration ranges, binary/ubinary need a multiple of 8. Default: the model's dimension. Above it or below 1: 400 QEMBED_INVALID_DIMENSIONS",
        }),
      ),
    },
    { additionalProperties: false },
  );
}

const encodeResponseSchema = Type.Object({
  model: modelRefSchema,
  input_type: StringEnum(INPUT_TYPES),
  precision: StringEnum(PRECISIONS),
  encoding: StringEnum(ENCODINGS),
  dimension: Type.Integer({ description: "Dimensions of each vector (the dimensions asked for, else the model's)" }),
  bytes_per_vector: Type.Integer({ description: 'Bytes of one vector at this precision' }),
  embeddings: Type.Array(Type.Union([Type.Array(Type.Number()), Type.String({ format: 'byte' })]), {
    description: 'One per input, in order: an array of numbers (json) or a base64 string (base64).',
  }),
  usage: Type.Object({
    input_tokens: Type.Integer({ description: 'Tokens fed to the model, prompts and special tokens included' }),
    truncated_inputs: Type.Array(Type.Integer(), { description: 'Indices of the inputs cut at the max tokens' }),
  }),
});

export const encodeRoutes: FastifyPluginAsyncTypebox<{ encoder: () => Encoder; limits: EncodeLimits }> = async (app, deps) => {
  app.post(
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
      const texts = typeof body.inputs === 'string' ? [body.inputs] : body.inputs;
      const inputType = body.input_type ?? 'document';
      const precision = body.precision ?? 'float32';
      const encoding = body.encoding ?? 'json';
      const embedded = await embedTexts(encoder, {
        texts,
        expectModel: body.model,
        inputType,
        truncate: body.truncate ?? true,
        dimensions: body.dimensions,
        precisions: [precision],
      });
      return {
        model: { name: encoder.bundle.manifest.name, fingerprint: encoder.fingerprint },
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
