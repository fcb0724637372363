/**
 * The Cohere-compatible API: POST /v2/embed, Cohere's v2 embed request and answer, for clients of
 * the one widely used API with native int8 and binary embeddings. Several `embedding_types` come
 * from one forward pass; binary and ubinary are packed sign bits (binary: the bytes minus 128),
 * as Cohere defines them and qembed already does. Errors take Cohere's shape ({"message"}, plus
 * qembed's stable `code`).
 */
import type { FastifyPluginAsync } from 'fastify';
import { randomUUID } from 'node:crypto';
import type { InputType } from '../../encoder/bundle.js';
import type { Encoder } from '../../encoder/encoder.js';
import { embedTexts } from '../../embedding/embed.js';
import { errors } from '../../errors.js';
import { PRECISIONS, type Precision } from '../../quantization/quantize.js';
import { COMPAT_MAX_INPUTS, compatRequest } from '../compat-inputs.js';
import { answerErrorsAs, headersOf } from '../error-handler.js';
import type { EncodeLimits } from '../schemas/texts.js';

/** Cohere's input types, and the model prompt each one takes. */
const INPUT_TYPES: Record<string, InputType> = {
  search_document: 'document',
  search_query: 'query',
  // Symmetric uses: every text is embedded alike, with the document prompt.
  classification: 'document',
  clustering: 'document',
};

/** Cohere's names of the precisions: float32 is `float`. */
type EmbeddingType = 'float' | Exclude<Precision, 'float32'>;
const precisionOf = (t: EmbeddingType): Precision => (t === 'float' ? 'float32' : t);
const typeOf = (p: Precision): EmbeddingType => (p === 'float32' ? 'float' : p);

interface EmbedBody {
  model: string;
  texts: unknown;
  input_type?: keyof typeof INPUT_TYPES;
  embedding_types?: EmbeddingType[];
  truncate?: 'NONE' | 'START' | 'END';
  output_dimension?: number;
}

const cohereErrorSchema = {
  type: 'object',
  required: ['message', 'code'],
  properties: { message: { type: 'string' }, code: { type: 'string', description: "qembed's stable error code (QEMBED_...)" } },
} as const;
const cohereErrors = (...statuses: number[]) => Object.fromEntries(statuses.map((s) => [s, { description: 'Cohere-shaped error', ...cohereErrorSchema }]));

const vectors = (items: object) => ({ type: 'array', items: { type: 'array', items } });

export const cohereRoutes: FastifyPluginAsync<{ encoder: () => Encoder; limits: EncodeLimits }> = async (app, deps) => {
  answerErrorsAs(app, (reply, q) => void reply.code(q.statusCode).headers(headersOf(q)).send({ message: q.message, code: q.code }));

  app.post<{ Body: EmbedBody }>(
    '/embed',
    {
      schema: {
        tags: ['cohere'],
        summary: 'Cohere-compatible embed (v2)',
        description:
          `Cohere's v2 embed request and answer. \`model\` is the served model's name or fingerprint. Up to ${COMPAT_MAX_INPUTS} texts. ` +
          'input_type search_query takes the query prompt; search_document, classification and clustering the document prompt. ' +
          'truncate END (default) cuts at the model max tokens, NONE answers 413 for a longer text; START is refused (the model was trained on texts cut at the end).',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['model', 'texts'],
          properties: {
            model: { type: 'string' },
            texts: { description: 'The texts (1 or more)' },
            input_type: { type: 'string', enum: Object.keys(INPUT_TYPES), default: 'search_document' },
            embedding_types: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', enum: PRECISIONS.map(typeOf) }, default: ['float'] },
            truncate: { type: 'string', enum: ['NONE', 'START', 'END'], default: 'END' },
            output_dimension: { type: 'integer', description: 'Keep the first N dimensions, renormalized (Matryoshka)' },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['id', 'embeddings', 'texts', 'meta'],
            properties: {
              id: { type: 'string' },
              embeddings: {
                type: 'object',
                properties: {
                  float: vectors({ type: 'number' }),
                  int8: vectors({ type: 'integer' }),
                  uint8: vectors({ type: 'integer' }),
                  binary: vectors({ type: 'integer' }),
                  ubinary: vectors({ type: 'integer' }),
                },
              },
              texts: { type: 'array', items: { type: 'string' } },
              meta: {
                type: 'object',
                properties: {
                  api_version: { type: 'object', properties: { version: { type: 'string' } } },
                  billed_units: { type: 'object', properties: { input_tokens: { type: 'integer' } } },
                },
              },
            },
          },
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
        inputType: INPUT_TYPES[body.input_type ?? 'search_document']!,
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
