/** Collections: create (bound to the served model), list, describe, delete. */
import type { FastifyInstance } from 'fastify';
import { COLLECTION_NAME_PATTERN, type CollectionInfo, type SearchService } from '../../search/search-service.js';
import { errorResponses } from '../schemas.js';

export const collectionNameSchema = {
  type: 'string',
  pattern: COLLECTION_NAME_PATTERN,
  description: 'Collection name: 1 to 64 characters from A-Z a-z 0-9 _ . -',
} as const;

export const collectionParamsSchema = {
  type: 'object',
  required: ['name'],
  properties: { name: collectionNameSchema },
} as const;

const collectionSchema = {
  type: 'object',
  required: ['name', 'fingerprint', 'dimension', 'created_at', 'documents', 'disk_bytes', 'memory_bytes'],
  properties: {
    name: { type: 'string' },
    fingerprint: { type: 'string', description: 'Fingerprint of the model bundle whose codes the collection holds' },
    dimension: { type: 'integer' },
    created_at: { type: 'string', format: 'date-time' },
    documents: { type: 'integer', description: 'Documents stored' },
    disk_bytes: {
      type: 'integer',
      description: "Bytes of the stored values (ids, texts, metadata, text hashes, binary and int8 codes), kept exact by triggers; SQLite's page and index overhead comes on top",
    },
    memory_bytes: {
      type: 'integer',
      nullable: true,
      description: 'Bytes of the in-memory binary index (codes, rowids, tombstones, search scratch); null until loaded',
    },
    index: {
      type: 'object',
      nullable: true,
      description: 'The in-memory index: live documents, slots in use and tombstones awaiting compaction',
      properties: { documents: { type: 'integer' }, slots: { type: 'integer' }, tombstones: { type: 'integer' } },
    },
    reencode: {
      type: 'object',
      nullable: true,
      description: 'A re-encoding for another model in progress (after POST /models/{fingerprint}/activate); searches use the current codes until it completes',
      properties: {
        target_fingerprint: { type: 'string' },
        done: { type: 'integer', description: 'Documents with codes of the target model' },
        total: { type: 'integer' },
        started_at: { type: 'string', format: 'date-time' },
      },
    },
  },
} as const;

export function collectionView(c: CollectionInfo) {
  return {
    name: c.name,
    fingerprint: c.fingerprint,
    dimension: c.dimension,
    created_at: c.createdAt,
    documents: c.documents,
    disk_bytes: c.payloadBytes,
    memory_bytes: c.memoryBytes,
    index: c.index,
    reencode: c.reencode && { target_fingerprint: c.reencode.targetFingerprint, done: c.reencode.done, total: c.reencode.total, started_at: c.reencode.startedAt },
  };
}

export function collectionRoutes(app: FastifyInstance, deps: { search: SearchService }): void {
  const { search } = deps;

  app.post<{ Body: { name: string } }>(
    '/collections',
    {
      schema: {
        tags: ['collections'],
        summary: 'Create a collection bound to the model served now',
        body: { type: 'object', additionalProperties: false, required: ['name'], properties: { name: collectionNameSchema } },
        response: { 201: collectionSchema, ...errorResponses(400, 401, 409, 415) },
      },
    },
    async (request, reply) => {
      void reply.code(201);
      return collectionView(search.createCollection(request.body.name));
    },
  );

  app.get(
    '/collections',
    {
      schema: {
        tags: ['collections'],
        summary: 'List collections',
        response: {
          200: { type: 'object', required: ['collections'], properties: { collections: { type: 'array', items: collectionSchema } } },
          ...errorResponses(401),
        },
      },
    },
    async () => ({ collections: search.listCollections().map(collectionView) }),
  );

  app.get<{ Params: { name: string } }>(
    '/collections/:name',
    {
      schema: {
        tags: ['collections'],
        summary: 'Describe a collection: documents, bytes on disk and in memory',
        params: collectionParamsSchema,
        response: { 200: collectionSchema, ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => collectionView(search.getCollection(request.params.name)),
  );

  app.delete<{ Params: { name: string } }>(
    '/collections/:name',
    {
      schema: {
        tags: ['collections'],
        summary: 'Delete a collection and its documents',
        params: collectionParamsSchema,
        response: {
          200: {
            type: 'object',
            required: ['name', 'deleted_documents'],
            properties: { name: { type: 'string' }, deleted_documents: { type: 'integer' } },
          },
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (request) => {
      const r = search.deleteCollection(request.params.name);
      return { name: r.name, deleted_documents: r.documents };
    },
  );
}
