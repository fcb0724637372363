/** Documents of a collection: batch upsert, get one, delete one, delete many. */
import type { FastifyPluginAsync } from 'fastify';
import { errors } from '../../errors.js';
import { float32FromBase64 } from '../../quantization/serialize.js';
import { DOCUMENT_ID_MAX_CHARS, DOCUMENT_ID_PATTERN, METADATA_MAX_DEPTH, type SearchService } from '../../search/search-service.js';
import { errorResponses } from '../schemas/errors.js';
import { collectionNameSchema, collectionParamsSchema } from '../schemas/collections.js';
import { type EncodeLimits, textSchema } from '../schemas/texts.js';

/** A vector as sent: an array of numbers, or base64 of little-endian float32. */
function vectorOf(value: number[] | string, where: string): Float32Array {
  if (Array.isArray(value)) return Float32Array.from(value);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw errors.invalidVector(`${where} is neither an array of numbers nor base64`);
  try {
    return float32FromBase64(value);
  } catch (e) {
    throw errors.invalidVector(`${where}: ${(e as Error).message}`);
  }
}

/** Most ids accepted by POST /collections/{name}/documents/delete. */
export const DELETE_MAX_IDS = 10_000;

const documentIdSchema = {
  type: 'string',
  minLength: 1,
  maxLength: DOCUMENT_ID_MAX_CHARS,
  pattern: DOCUMENT_ID_PATTERN,
  description: `Document id, unique in its collection: 1 to ${DOCUMENT_ID_MAX_CHARS} characters, any but U+0000`,
} as const;

const metadataSchema = {
  type: 'object',
  additionalProperties: true,
  description: `Any JSON object nested at most ${METADATA_MAX_DEPTH} levels deep; its top-level scalar values can be used in search filters`,
} as const;

interface UpsertBody {
  documents: { id: string; text?: string; vector?: number[] | string; metadata?: Record<string, unknown> }[];
  truncate?: boolean;
  model?: string;
}

const documentSchema = {
  type: 'object',
  required: ['id', 'text', 'metadata', 'updated_at'],
  properties: {
    id: { type: 'string' },
    text: { type: 'string', nullable: true, description: 'null for a document given as a vector without text' },
    metadata: metadataSchema,
    updated_at: { type: 'string', format: 'date-time' },
  },
} as const;

const documentParamsSchema = {
  type: 'object',
  required: ['name', 'id'],
  properties: { name: collectionNameSchema, id: documentIdSchema },
} as const;

export const documentRoutes: FastifyPluginAsync<{ search: SearchService; limits: EncodeLimits }> = async (app, deps) => {
  const { search, limits } = deps;

  app.put<{ Params: { name: string }; Body: UpsertBody }>(
    '/collections/:name/documents',
    {
      schema: {
        tags: ['documents'],
        summary: 'Insert or replace documents (encoded as documents; one transaction per request)',
        description:
          'Each document is stored with its text, metadata, binary code and int8 code. An existing id is replaced atomically. ' +
          'Documents whose text is already stored unchanged are not re-encoded (only their metadata is updated if it differs), ' +
          'so sending a batch again is cheap: that is what makes `qembed ingest` resumable. The batch is written entirely or not at all.',
        params: collectionParamsSchema,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['documents'],
          properties: {
            documents: {
              type: 'array',
              minItems: 1,
              maxItems: limits.maxInputs,
              description: `1 to ${limits.maxInputs} documents with distinct ids`,
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['id'],
                anyOf: [{ required: ['text'] }, { required: ['vector'] }],
                properties: {
                  id: documentIdSchema,
                  text: textSchema(limits.maxInputChars),
                  vector: {
                    description:
                      "The document's float32 embedding, computed elsewhere with the collection's model (name it in `model`): an array of numbers, or base64 of little-endian float32. Quantized exactly as an encoded text; the text, if any, is only stored",
                    oneOf: [{ type: 'array', items: { type: 'number' } }, { type: 'string', contentEncoding: 'base64' }],
                  },
                  metadata: metadataSchema,
                },
              },
            },
            truncate: {
              type: 'boolean',
              default: true,
              description: "Cut texts past the model's max tokens; false answers 413 instead",
            },
            model: {
              type: 'string',
              description:
                "With vectors: the fingerprint (or name) of the model that computed them. Another model than the collection's is a 409 QEMBED_MODEL_MISMATCH that writes nothing",
            },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['upserted', 'metadata_updated', 'unchanged', 'usage'],
            properties: {
              upserted: { type: 'integer', description: 'Documents written with new codes (new ids or changed texts)' },
              metadata_updated: { type: 'integer', description: 'Documents with the same text whose metadata changed (not re-encoded)' },
              unchanged: { type: 'integer', description: 'Documents already stored with the same text and metadata' },
              usage: { type: 'object', required: ['input_tokens'], properties: { input_tokens: { type: 'integer' } } },
            },
          },
          ...errorResponses(400, 401, 404, 409, 413, 415, 429, 503),
        },
      },
    },
    async (request) => {
      const documents = request.body.documents.map((d, i) => ({ ...d, vector: d.vector === undefined ? undefined : vectorOf(d.vector, `documents.${i}.vector`) }));
      const r = await search.upsertDocuments(request.params.name, documents, { truncate: request.body.truncate ?? true, model: request.body.model });
      return { upserted: r.upserted, metadata_updated: r.metadataUpdated, unchanged: r.unchanged, usage: { input_tokens: r.inputTokens } };
    },
  );

  app.get<{ Params: { name: string; id: string } }>(
    '/collections/:name/documents/:id',
    {
      schema: {
        tags: ['documents'],
        summary: 'Get one document (its id URL-encoded)',
        params: documentParamsSchema,
        response: { 200: documentSchema, ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => {
      const d = search.getDocument(request.params.name, request.params.id);
      return { id: d.id, text: d.text, metadata: d.metadata, updated_at: d.updatedAt };
    },
  );

  app.delete<{ Params: { name: string; id: string } }>(
    '/collections/:name/documents/:id',
    {
      schema: {
        tags: ['documents'],
        summary: 'Delete one document (its id URL-encoded)',
        params: documentParamsSchema,
        response: {
          200: { type: 'object', required: ['id', 'deleted'], properties: { id: { type: 'string' }, deleted: { type: 'boolean' } } },
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (request) => {
      const { name, id } = request.params;
      const r = search.deleteDocuments(name, [id]);
      if (r.deleted.length === 0) throw errors.documentNotFound(`collection "${name}" has no document "${id}"`);
      return { id, deleted: true };
    },
  );

  app.post<{ Params: { name: string }; Body: { ids: string[] } }>(
    '/collections/:name/documents/delete',
    {
      schema: {
        tags: ['documents'],
        summary: 'Delete many documents (one transaction); ids that do not exist are reported, not refused',
        params: collectionParamsSchema,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['ids'],
          properties: { ids: { type: 'array', minItems: 1, maxItems: DELETE_MAX_IDS, items: documentIdSchema } },
        },
        response: {
          200: {
            type: 'object',
            required: ['deleted', 'not_found'],
            properties: {
              deleted: { type: 'integer', description: 'Documents deleted' },
              not_found: { type: 'array', items: { type: 'string' }, description: 'Ids the collection did not hold' },
            },
          },
          ...errorResponses(400, 401, 404, 413, 415),
        },
      },
    },
    async (request) => {
      const r = search.deleteDocuments(request.params.name, request.body.ids);
      return { deleted: r.deleted.length, not_found: r.notFound };
    },
  );
};
