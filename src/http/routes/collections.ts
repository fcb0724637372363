/** Collections: create (bound to the served model), list, describe (with the recall measured on it), set the recall target, re-encode, delete. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errors } from '../../errors.js';
import type { Activation } from '../../models/activation.js';
import type { CollectionInfo, SearchService } from '../../search/search-service.js';
import { collectionNameSchema, collectionParamsSchema } from '../schemas/collections.js';
import { errorResponses } from '../schemas/errors.js';
import { anyBadValue, withFieldErrors } from '../schemas/field-errors.js';
import { JsonObject, Nullable, StringEnum } from '../schemas/json.js';
import { qualitySchema, qualityView } from '../schemas/recall.js';

const targetRecallSchema = withFieldErrors(
  Type.Number({
    exclusiveMinimum: 0,
    maximum: 1,
    description:
      'The recall@10 `rescore_multiplier: "auto"` aims for: the share of the exact int8 top 10 a search should return, above 0 and at most 1 (default 0.99)',
  }),
  anyBadValue(errors.invalidTargetRecall, 'a number above 0 and at most 1, e.g. 0.99'),
);

export const collectionSchema = Type.Object({
  name: Type.String(),
  fingerprint: Type.String({ description: 'Fingerprint of the model bundle whose codes the collection holds' }),
  dimension: Type.Integer(),
  code_bits: Type.Integer({
    description:
      "Bits of each document's binary code the first stage scans: the signs of the first code_bits dimensions (memory_bytes and scan time scale with it); int8 rescoring uses every dimension",
  }),
  created_at: Type.String({ format: 'date-time' }),
  documents: Type.Integer({ description: 'Documents stored' }),
  disk_bytes: Type.Integer({
    description: "Bytes of the stored values (ids, texts, metadata, text hashes, binary and int8 codes), kept exact by triggers; SQLite's page and index overhead comes on top",
  }),
  memory_bytes: Nullable(Type.Integer({ description: 'Bytes of the in-memory binary index (codes, rowids, tombstones, search scratch); null until loaded' })),
  index: Type.Optional(
    Nullable(
      Type.Object(
        { documents: Type.Optional(Type.Integer()), slots: Type.Optional(Type.Integer()), tombstones: Type.Optional(Type.Integer()) },
        { description: 'The in-memory index: live documents, slots in use and tombstones awaiting compaction' },
      ),
    ),
  ),
  reencode: Type.Optional(
    Nullable(
      Type.Object(
        {
          target_fingerprint: Type.Optional(Type.String()),
          done: Type.Optional(Type.Integer({ description: 'Documents with codes of the target model' })),
          total: Type.Optional(Type.Integer()),
          started_at: Type.Optional(Type.String({ format: 'date-time' })),
          retries: Type.Optional(Type.Integer({ description: 'Steps that failed and were retried (a re-encoding never gives up on its own)' })),
          last_error: Type.Optional(Nullable(Type.String({ description: 'The last failure, until a step succeeds again' }))),
        },
        {
          description:
            'A re-encoding for another model in progress (after POST /models/{fingerprint}/activate or POST /collections/{name}/reencode); searches use the current codes until it completes',
        },
      ),
    ),
  ),
  model: Type.Optional(
    Type.Object(
      {
        state: StringEnum(['served', 'stale'], { description: "served: its codes are the served model's; stale: another model's" }),
        served_fingerprint: Type.String(),
        searchable: Type.Boolean({ description: 'Searches and writes work now (on its old codes while stale)' }),
        action: Type.Optional(Type.String({ description: 'What to do when the collection is stale' })),
      },
      { description: "Whether the collection's codes are the served model's" },
    ),
  ),
  quality: Type.Optional(qualitySchema),
  transform: Type.Optional(
    Type.Object(
      {
        served: Nullable(Type.String({ description: 'Fingerprint of the transform its first-stage codes are made with; null: first dims (the signs of the first code_bits dimensions)' })),
        available: Type.Array(
          Type.Object({
            fingerprint: Type.String(),
            method: Type.String({ description: '`qat` or `itq` (fitted by the worker), `rotation` (seeded)' }),
            bits: Type.Integer(),
            created_at: Type.String(),
            summary: JsonObject({
              description: "How it was made (the fit's job, sample, training and held-out evaluation) and, once measured, `comparison`: recall@10 at multiplier 4 per first stage of it and of the codes it would replace, on the same queries, and what was decided",
            }),
          }),
        ),
        switching: Nullable(
          Type.Object({
            target: Type.String(),
            policy: StringEnum(['always', 'if-better']),
            phase: StringEnum(['staging', 'measuring'], { description: 'staging: codes recomputed from the int8 codes; measuring: against the served codes' }),
            done: Type.Integer(),
            total: Type.Integer(),
            started_at: Type.String(),
            retries: Type.Integer(),
            last_error: Nullable(Type.String()),
          }),
        ),
      },
      { description: "The collection's first-stage transforms: the one served, those stored for it, a switch under way (POST /collections/{name}/fit, POST /collections/{name}/transform)" },
    ),
  ),
});

export function collectionView(c: CollectionInfo) {
  return {
    name: c.name,
    fingerprint: c.fingerprint,
    dimension: c.dimension,
    code_bits: c.codeBits,
    created_at: c.createdAt,
    documents: c.documents,
    disk_bytes: c.payloadBytes,
    memory_bytes: c.memoryBytes,
    index: c.index,
    reencode: c.reencode && {
      target_fingerprint: c.reencode.targetFingerprint,
      done: c.reencode.done,
      total: c.reencode.total,
      started_at: c.reencode.startedAt,
      retries: c.reencode.retries,
      last_error: c.reencode.lastError,
    },
    model: {
      state: c.model.state,
      served_fingerprint: c.model.servedFingerprint,
      searchable: c.model.searchable,
      ...(c.model.action !== undefined && { action: c.model.action }),
    },
    quality: qualityView(c.quality),
    transform: {
      served: c.transform.served,
      available: c.transform.available.map((t) => ({ fingerprint: t.fingerprint, method: t.method, bits: t.bits, created_at: t.createdAt, summary: t.summary })),
      switching: c.transform.switching && {
        target: c.transform.switching.target,
        policy: c.transform.switching.policy,
        phase: c.transform.switching.phase,
        done: c.transform.switching.done,
        total: c.transform.switching.total,
        started_at: c.transform.switching.startedAt,
        retries: c.transform.switching.retries,
        last_error: c.transform.switching.lastError,
      },
    },
  };
}

export const collectionRoutes: FastifyPluginAsyncTypebox<{ search: SearchService; activation?: Activation }> = async (app, deps) => {
  const { search } = deps;

  app.post(
    '/collections',
    {
      schema: {
        tags: ['collections'],
        summary: 'Create a collection bound to the model served now',
        body: Type.Object(
          {
            name: collectionNameSchema,
            code_bits: Type.Optional(
              Type.Integer({
                minimum: 8,
                maximum: 65536,
                description:
                  "First-stage code length in bits: one of the served model's binary_code_bits (GET /models; a bundle trained for compact codes lists several, e.g. 384, 256, 128, 64). Default: the model's dimension. Fixed for the collection's life",
              }),
            ),
            target_recall: Type.Optional(targetRecallSchema),
          },
          { additionalProperties: false },
        ),
        response: { 201: collectionSchema, ...errorResponses(400, 401, 409, 413, 415) },
      },
    },
    async (request, reply) => {
      void reply.code(201);
      return collectionView(search.createCollection(request.body.name, { codeBits: request.body.code_bits, targetRecall: request.body.target_recall }));
    },
  );

  app.get(
    '/collections',
    {
      schema: {
        tags: ['collections'],
        summary: 'List collections',
        response: { 200: Type.Object({ collections: Type.Array(collectionSchema) }), ...errorResponses(401) },
      },
    },
    async () => ({ collections: search.listCollections().map(collectionView) }),
  );

  app.get(
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

  app.patch(
    '/collections/:name',
    {
      schema: {
        tags: ['collections'],
        summary: "Change a collection's settings: its recall target",
        body: Type.Object({ target_recall: Nullable(targetRecallSchema) }, { additionalProperties: false }),
        params: collectionParamsSchema,
        response: { 200: collectionSchema, ...errorResponses(400, 401, 404, 413, 415) },
      },
    },
    async (request) => collectionView(search.setTargetRecall(request.params.name, request.body.target_recall)),
  );

  app.post(
    '/collections/:name/reencode',
    {
      schema: {
        tags: ['collections'],
        summary: 'Re-encode a collection for the served model, from its stored texts',
        description:
          "For a collection whose codes are another model's (GET /collections/{name} says `stale`): re-encodes every document in the background, resumable across restarts, with progress in `reencode`. Searches keep using the old codes while the old model is available, and answer 409 otherwise. 202 when a re-encoding started or was already running; 200 when the collection is already the served model's.",
        params: collectionParamsSchema,
        response: {
          200: Type.Object({ state: StringEnum(['none']), collection: collectionSchema }),
          202: Type.Object({ state: StringEnum(['started', 'running']), collection: collectionSchema }),
          ...errorResponses(400, 401, 404, 409, 503),
        },
      },
    },
    async (request, reply) => {
      if (!deps.activation) throw errors.unavailable('re-encoding is not configured in this process');
      const r = await deps.activation.reencodeCollection(request.params.name);
      void reply.code(r.state === 'none' ? 200 : 202);
      return { state: r.state, collection: collectionView(r.collection) };
    },
  );

  app.delete(
    '/collections/:name',
    {
      schema: {
        tags: ['collections'],
        summary: 'Delete a collection and its documents',
        params: collectionParamsSchema,
        response: {
          200: Type.Object({ name: Type.String(), deleted_documents: Type.Integer() }),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (request) => {
      const r = search.deleteCollection(request.params.name);
      return { name: r.name, deleted_documents: r.documents };
    },
  );
};
