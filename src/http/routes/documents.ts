/** Documents of a collection: batch upsert, get one, delete one, delete many. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errors } from '../../errors.js';
import { float32FromBase64 } from '../../quantization/serialize.js';
import { DOCUMENT_ID_MAX_CHARS, DOCUMENT_ID_PATTERN, METADATA_MAX_DEPTH, type SearchService } from '../../search/search-service.js';
import { collectionNameSchema, collectionParamsSchema } from '../schemas/collections.js';
import { errorResponses } from '../schemas/errors.js';
import { JsonObject, Nullable, OneOf } from '../schemas/json.js';
import { anyBadValue, withFieldErrors } from '../schemas/field-errors.js';
import { type EncodeLimits, inputListSchema, textSchema } from '../schemas/texts.js';

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

const documentIdSchema = withFieldErrors(
  Type.String({
    minLength: 1,
    maxLength: DOCUMENT_ID_MAX_CHARS,
    pattern: DOCUMENT_ID_PATTERN,
    description: `Document id, unique in its collection: 1 to ${DOCUMENT_ID_MAX_CHARS} characters, any but U+0000`,
  }),
  anyBadValue(errors.invalidDocumentId, `must be a string of 1 to ${DOCUMENT_ID_MAX_CHARS} characters, none of them U+0000`),
);

const metadataSchema = withFieldErrors(
  JsonObject({
    description: `Any JSON object nested at most ${METADATA_MAX_DEPTH} levels deep; its top-level scalar values can be used in search filters`,
  }),
  anyBadValue(errors.invalidMetadata, 'must be a JSON object'),
);

function upsertBodySchema(limits: EncodeLimits) {
  return Type.Object(
    {
      documents: inputListSchema(
        Type.Object(
          {
            id: documentIdSchema,
            text: Type.Optional(textSchema(limits.maxInputChars)),
            vector: Type.Optional(
              withFieldErrors(
                OneOf([Type.Array(Type.Number()), Type.String({ contentEncoding: 'base64' })], {
                  description:
                    "The document's float32 embedding, computed elsewhere with the collection's model (name it in `model`): an array of numbers, or base64 of little-endian float32. Quantized exactly as an encoded text; the text, if any, is only stored",
                }),
                anyBadValue(errors.invalidVector, 'must be an array of numbers or base64 of little-endian float32'),
              ),
            ),
            metadata: Type.Optional(metadataSchema),
          },
          { additionalProperties: false, anyOf: [{ required: ['text'] }, { required: ['vector'] }] },
        ),
        limits.maxInputs,
        { description: `1 to ${limits.maxInputs} documents with distinct ids` },
      ),
      truncate: Type.Optional(Type.Boolean({ default: true, description: "Cut texts past the model's max tokens; false answers 413 instead" })),
      model: Type.Optional(
        Type.String({
          description:
            "With vectors: the fingerprint (or name) of the model that computed them. Another model than the collection's is a 409 QEMBED_MODEL_MISMATCH that writes nothing",
        }),
      ),
    },
    { additionalProperties: false },
  );
}

const documentSchema = Type.Object({
  id: Type.String(),
  text: Nullable(Type.String({ description: 'null for a document given as a vector without text' })),
  metadata: metadataSchema,
  updated_at: Type.String({ format: 'date-time' }),
});

const documentParamsSchema = Type.Object({ name: collectionNameSchema, id: documentIdSchema });

export const documentRoutes: FastifyPluginAsyncTypebox<{ search: SearchService; limits: EncodeLimits }> = async (app, deps) => {
  const { search, limits } = deps;

  app.put(
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
        body: upsertBodySchema(limits),
        response: {
          200: Type.Object({
            upserted: Type.Integer({ description: 'Documents written with new codes (new ids or changed texts)' }),
            metadata_updated: Type.Integer({ description: 'Documents with the same text whose metadata changed (not re-encoded)' }),
            unchanged: Type.Integer({ description: 'Documents already stored with the same text and metadata' }),
            usage: Type.Object({ input_tokens: Type.Integer() }),
          }),
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

  app.get(
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

  app.delete(
    '/collections/:name/documents/:id',
    {
      schema: {
        tags: ['documents'],
        summary: 'Delete one document (its id URL-encoded)',
        params: documentParamsSchema,
        response: {
          200: Type.Object({ id: Type.String(), deleted: Type.Boolean() }),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (request) => {
      search.deleteDocument(request.params.name, request.params.id);
      return { id: request.params.id, deleted: true };
    },
  );

  app.post(
    '/collections/:name/documents/delete',
    {
      schema: {
        tags: ['documents'],
        summary: 'Delete many documents (one transaction); ids that do not exist are reported, not refused',
        params: collectionParamsSchema,
        body: Type.Object({ ids: inputListSchema(documentIdSchema, DELETE_MAX_IDS) }, { additionalProperties: false }),
        response: {
          200: Type.Object({
            deleted: Type.Integer({ description: 'Documents deleted' }),
            not_found: Type.Array(Type.String(), { description: 'Ids the collection did not hold' }),
          }),
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
