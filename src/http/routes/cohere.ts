/**
 * The Cohere-compatible API: POST /v2/embed, Cohere's v2 embed request and answer, for clients of
 * the one widely used API with native int8 and binary embeddings. Several `embedding_types` come
 * from one forward pass; binary and ubinary are packed sign bits (binary: the bytes minus 128),
 * as Cohere defines them and qembed already does. Errors take Cohere's shape ({"message"}, plus
 * qembed's stable `code`).
 */
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type TSchema, Type } from 'typebox';
import type { InputType } from '../../encoder/bundle.js';
import type { Encoder } from '../../encoder/encoder.js';
import { embedTexts } from '../../embedding/embed.js';
import { errors } from '../../errors.js';
import { PRECISIONS, type Precision } from '../../quantization/quantize.js';
import { COMPAT_MAX_INPUTS, compatRequest } from '../compat-inputs.js';
import { answerErrorsAs, headersOf } from '../error-handler.js';
import { enumCode, withFieldErrors } from '../schemas/field-errors.js';
import { StringEnum } from '../schemas/json.js';
import type { EncodeLimits } from '../schemas/texts.js';

/** Cohere's input types, and the model prompt each one takes. */
const INPUT_TYPES = {
  search_document: 'document',
  search_query: 'query',
  // Symmetric uses: every text is embedded alike, with the document prompt.
  classification: 'document',
  clustering: 'document',
} as const satisfies Record<string, InputType>;

/** Cohere's names of the precisions: float32 is `float`. */
type EmbeddingType = 'float' | Exclude<Precision, 'float32'>;
const precisionOf = (t: EmbeddingType): Precision => (t === 'float' ? 'float32' : t);
const typeOf = (p: Precision): EmbeddingType => (p === 'float32' ? 'float' : p);

const embedBodySchema = Type.Object(
  {
    model: Type.String(),
    texts: Type.Unknown({ description: 'The texts (1 or more)' }),
    input_type: Type.Optional(
      withFieldErrors(StringEnum(Object.keys(INPUT_TYPES) as (keyof typeof INPUT_TYPES)[], { default: 'search_document' }), enumCode(errors.unknownInputType)),
    ),
    embedding_types: Type.Optional(Type.Array(StringEnum(PRECISIONS.map(typeOf)), { minItems: 1, uniqueItems: true, default: ['float'] })),
    truncate: Type.Optional(StringEnum(['NONE', 'START', 'END'], { default: 'END' })),
    output_dimension: Type.Optional(Type.Integer({ description: 'Keep the first N dimensions, renormalized (Matryoshka)' })),
  },
  { additionalProperties: false },
);

const cohereErrorSchema = Type.Object(
  { message: Type.String(), code: Type.String({ description: "qembed's stable error code (QEMBED_...)" }) },
  { description: 'Cohere-shaped error' },
);
const cohereErrors = <const S extends number>(...statuses: S[]) => Object.fromEntries(statuses.map((s) => [s, cohereErrorSchema])) as Record<S, typeof cohereErrorSchema>;

const vectors = <T extends TSchema>(items: T) => Type.Optional(Type.Array(Type.Array(items)));

const embedResponseSchema = Type.Object({
  id: Type.String(),
  embeddings: Type.Object({
    float: vectors(Type.Number()),
    int8: vectors(Type.Integer()),
    uint8: vectors(Type.Integer()),
    binary: vectors(Type.Integer()),
    ubinary: vectors(Type.Integer()),
  }),
  texts: Type.Array(Type.String()),
  meta: Type.Object({
    api_version: Type.Optional(Type.Object({ version: Type.Optional(Type.String()) })),
    billed_units: Type.Optional(Type.Object({ input_tokens: Type.Optional(Type.Integer()) })),
  }),
});

export const cohereRoutes: FastifyPluginAsyncTypebox<{ encoder: () => Encoder; limits: EncodeLimits }> = async (app, deps) => {
  answerErrorsAs(app, (reply, q) => void reply.code(q.statusCode).headers(headersOf(q)).send({ message: q.message, code: q.code }));

  app.post(
    '/embed',
    {
      schema: {
        tags: ['cohere'],
        summary: 'Cohere-compatible embed (v2)',
        description:
          `Cohere's v2 embed request and answer. \`model\` is the served model's name or fingerprint. Up to ${COMPAT_MAX_INPUTS} texts. ` +
          'input_type search_query takes the query prompt; search_document, classification and clustering the document prompt. ' +
          'truncate END (default) cuts at the model max tokens, NONE answers 413 for a longer text; START is refused (the model was trained on texts cut at the end).',
        body: embedBodySchema,
        response: {
          200: embedResponseSchema,
          ...cohereErrors(400, 401, 404, 413, 415, 429, 503),
        },
      },
    },
    async (request) => {
      const body = request.body;
      const { encoder, texts } = compatRequest(deps.encoder(), body.model, body.texts, 'texts', deps.limits.maxInputChars);
      const truncate = body.truncate ?? 'END';
      if (truncate === 'START') {
        throw errors.unsupportedTruncation('truncate START is not supported: the model was trained on texts cut at the end; send END (cut) or NONE (413 for a text past the max tokens)', {
          field: 'truncate',
        });
      }
      const types = (body.embedding_types ?? ['float']).map(precisionOf);
      const result = await embedTexts(encoder, {
        texts,
        inputType: INPUT_TYPES[body.input_type ?? 'search_document'],
        truncate: truncate === 'END',
        dimensions: body.output_dimension,
        precisions: types,
        batchSize: deps.limits.maxInputs,
      });
      const embeddings = Object.fromEntries(types.map((p) => [typeOf(p), result.vectors.get(p)!.map((v) => Array.from(v))]));
      const tokens = result.tokens.reduce((a, b) => a + b, 0);
      return { id: randomUUID(), embeddings, texts, meta: { api_version: { version: '2' }, billed_units: { input_tokens: tokens } } };
    },
  );
};
