/** Documents of a collection: batch upsert, list a page, get one, delete one, delete many. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errors } from '../../errors.js';
import { float32FromBase64 } from '../../quantization/serialize.js';
import {
  CURSOR_MAX_CHARS,
  CURSOR_PATTERN,
  DOCUMENT_ID_MAX_CHARS,
  DOCUMENT_ID_PATTERN,
  LIST_LIMIT_DEFAULT,
  LIST_LIMIT_MAX,
  METADATA_MAX_DEPTH,
  type SearchService,
  type StoredDocumentView,
} from '../../search/search-service.js';
import { collectionNameSchema, collectionParamsSchema } from '../schemas/collections.js';
import { errorResponses } from '../schemas/errors.js';
import { filterSchema } from '../schemas/filter.js';
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

const documentView = (d: StoredDocumentView) => ({ id: d.id, text: d.text, metadata: d.metadata, updated_at: d.updatedAt });

const documentParamsSchema = Type.Object({ name: collectionNameSchema, id: documentIdSchema });

const listQuerySchema = Type.Object(
  {
    limit: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: LIST_LIMIT_MAX,
        default: LIST_LIMIT_DEFAULT,
        description: `Documents in the page, 1 to ${LIST_LIMIT_MAX}: texts come whole, so a page holds at most ${LIST_LIMIT_MAX} × QEMBED_MAX_INPUT_CHARS characters of text`,
      }),
    ),
    after: Type.Optional(
      withFieldErrors(
        Type.String({
          minLength: 1,
          maxLength: CURSOR_MAX_CHARS,
          pattern: CURSOR_PATTERN,
          description: 'The `next` of the previous page, as it was given (opaque); leave it out for the first page',
        }),
        anyBadValue(errors.invalidCursor, 'use the `next` of the previous page'),
      ),
    ),
    // JSON in the query string (app.ts parses it before validation): OpenAPI says so with a content type.
    filter: Type.Optional(filterSchema({ description: 'Sent as URL-encoded JSON, e.g. `filter=%7B%22lang%22%3A%22en%22%7D`.', 'x-consume': 'application/json' })),
  },
  { additionalProperties: false },
);

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
    '/collections/:name/documents',
    {
      schema: {
        tags: ['documents'],
        summary: 'List documents a page at a time, in the order they were first written, optionally filtered on metadata',
        description:
          'Pages follow a cursor (`next`, sent back as `after`), not an offset: documents written or deleted between two pages neither shift the next page ' +
          'nor appear twice; a document created meanwhile comes in a later page, a rewritten one stays where it was. ' +
          '`filter` has the semantics and limits of the filter of POST /search.',
        params: collectionParamsSchema,
        querystring: listQuerySchema,
        response: {
          200: Type.Object({
            documents: Type.Array(documentSchema),
            next: Nullable(Type.String({ description: 'The cursor of the next page (send it as `after`); null on the last page' })),
            total: Type.Integer({ description: 'Documents in the collection, or those the filter matches, as this page was read' }),
          }),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (request) => {
      const { limit, after, filter } = request.query;
      const page = search.listDocuments(request.params.name, { limit, after, filter });
      return {
        documents: page.documents.map(documentView),
        next: page.next,
        total: page.total,
      };
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
    async (request) => documentView(search.getDocument(request.params.name, request.params.id)),
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
