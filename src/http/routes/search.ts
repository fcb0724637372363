/** POST /search: binary first stage over the collection's index, then int8 rescoring (a multiplier asked for or chosen from measured recall), or an exact int8 ranking. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { FIRST_STAGES, RESCORE_MULTIPLIER_MAX, type SearchService, TOP_K_MAX } from '../../search/search-service.js';
import { errors } from '../../errors.js';
import { collectionNameSchema } from '../schemas/collections.js';
import { errorResponses } from '../schemas/errors.js';
import { filterSchema } from '../schemas/filter.js';
import { anyBadValue, withFieldErrors } from '../schemas/field-errors.js';
import { JsonObject, Nullable, OneOf, StringEnum } from '../schemas/json.js';
import { recallSchema, recallView } from '../schemas/recall.js';
import { type EncodeLimits, textSchema } from '../schemas/texts.js';

function searchBodySchema(limits: EncodeLimits) {
  return Type.Object(
    {
      collection: collectionNameSchema,
      query: Type.Optional(textSchema(limits.maxInputChars, { description: 'The query text; send this or `vector`' })),
      vector: Type.Optional(
        withFieldErrors(
          Type.Array(Type.Number(), {
            minItems: 1,
            maxItems: 65536,
            description: "A float32 query embedding of the model's dimension (skips encoding); send this or `query`",
          }),
          anyBadValue(errors.invalidVector, 'must be an array of numbers'),
        ),
      ),
      model: Type.Optional(
        Type.String({
          description:
            "For a `vector`: the model (fingerprint or name) that computed it, when not the served one (e.g. a collection still being re-encoded holds the previous model's codes). With a `query`: the model you expect the collection's codes to be from. 409 QEMBED_MODEL_MISMATCH when they are another model's.",
        }),
      ),
      top_k: Type.Optional(
        withFieldErrors(Type.Integer({ minimum: 1, maximum: TOP_K_MAX, default: 10, description: `Hits to return, 1 to ${TOP_K_MAX}` }), anyBadValue(errors.invalidTopK)),
      ),
      rescore_multiplier: Type.Optional(
        withFieldErrors(
          OneOf([Type.Integer({ minimum: 1, maximum: RESCORE_MULTIPLIER_MAX }), StringEnum(['auto'])], {
            description:
              `The first stage keeps top_k × rescore_multiplier candidates for rescoring: 1 to ${RESCORE_MULTIPLIER_MAX} (default 4), or \`auto\`: the smallest ` +
              "multiplier whose recall@10, measured on this collection's own queries (GET /collections/{name}: `quality`), has a lower bound at the collection's " +
              '`target_recall` (default 0.99); 4 before anything is measured, and `max_rescore_multiplier` when no multiplier up to it reaches the target. The answer\'s `recall` says which was used',
          }),
          anyBadValue(errors.invalidRescoreMultiplier, `an integer from 1 to ${RESCORE_MULTIPLIER_MAX}, or "auto"`),
        ),
      ),
      max_rescore_multiplier: Type.Optional(
        withFieldErrors(
          Type.Integer({ minimum: 1, maximum: RESCORE_MULTIPLIER_MAX, description: `With \`"rescore_multiplier": "auto"\` only: the largest multiplier it may choose (1 to ${RESCORE_MULTIPLIER_MAX}, default ${RESCORE_MULTIPLIER_MAX})` }),
          anyBadValue(errors.invalidRescoreMultiplier),
        ),
      ),
      rescore: Type.Optional(
        OneOf([Type.Boolean(), StringEnum(['exact'])], {
          description:
            '`true` (default): rescore the candidates with their int8 codes; `false`: the first stage\'s order and scores; `exact`: rank every document (or every one the filter matches) by its int8 code, the reference ranking that recall is measured against, up to QEMBED_EXACT_MAX_DOCUMENTS documents',
        }),
      ),
      first_stage: Type.Optional(
        StringEnum(FIRST_STAGES, {
          default: 'hamming',
          description:
            '`hamming`: distance between the binary query code and the documents\' codes; `asymmetric`: a 4-bit query scored ' +
            'against the documents\' sign bits (finds a little more of the float32 top-k, costs about 6× the first-stage time; see docs/search.md)',
        }),
      ),
      filter: Type.Optional(filterSchema()),
    },
    { additionalProperties: false },
  );
}

const statsSchema = Type.Object({
  documents_scanned: Type.Integer({ description: 'Documents whose Hamming distance was computed (all, or those the filter matched)' }),
  candidates: Type.Integer({ description: 'Documents the first stage kept (top_k × rescore_multiplier, or top_k without rescoring)' }),
  candidates_rescored: Type.Integer({ description: 'Candidates scored with their int8 codes' }),
  encode_ms: Type.Number({ description: 'Encoding the query (0 for a vector)' }),
  filter_ms: Type.Number({ description: 'Finding the documents the filter matches (SQLite)' }),
  first_stage_ms: Type.Number({ description: 'Top-k of the first stage over the binary codes in memory' }),
  rescore_ms: Type.Number({ description: "Reading the candidates' int8 codes and scoring them" }),
});

const searchResponseSchema = Type.Object({
  hits: Type.Array(
    Type.Object({
      id: Type.String(),
      score: Type.Number({
        description:
          'Approximate float32 dot product (rescored); without rescoring, 1 − 2·hamming/dimension, or for the asymmetric first stage the cosine between the 4-bit query and the sign vector',
      }),
      text: Nullable(Type.String({ description: 'null for a document given as a vector without text' })),
      metadata: JsonObject(),
    }),
  ),
  stats: statsSchema,
  recall: recallSchema,
});

export const searchRoutes: FastifyPluginAsyncTypebox<{ search: SearchService; limits: EncodeLimits }> = async (app, deps) => {
  app.post(
    '/search',
    {
      schema: {
        tags: ['search'],
        summary: 'Search a collection with a text or a float32 vector',
        description:
          'The query is encoded as a query (float32), packed to binary, and compared by Hamming distance with every document ' +
          '(or every document the filter matches) in memory; the top_k × rescore_multiplier nearest are then rescored as ' +
          "float32 query · int8 document (the bundle's calibration folded into the query) and the top_k best returned. " +
          'Without rescoring, score = 1 − 2·hamming/dimension.',
        body: searchBodySchema(deps.limits),
        response: { 200: searchResponseSchema, ...errorResponses(400, 401, 404, 409, 413, 415, 429, 503) },
      },
    },
    async (request) => {
      const b = request.body;
      const r = await deps.search.search({
        collection: b.collection,
        ...(b.query !== undefined && { query: b.query }),
        ...(b.vector !== undefined && { vector: b.vector }),
        ...(b.model !== undefined && { model: b.model }),
        ...(b.top_k !== undefined && { topK: b.top_k }),
        ...(b.rescore_multiplier !== undefined && { rescoreMultiplier: b.rescore_multiplier }),
        ...(b.max_rescore_multiplier !== undefined && { maxRescoreMultiplier: b.max_rescore_multiplier }),
        ...(b.rescore !== undefined && { rescore: b.rescore }),
        ...(b.first_stage !== undefined && { firstStage: b.first_stage }),
        ...(b.filter !== undefined && { filter: b.filter }),
      });
      const s = r.stats;
      return {
        hits: r.hits,
        stats: {
          documents_scanned: s.documentsScanned,
          candidates: s.candidates,
          candidates_rescored: s.candidatesRescored,
          encode_ms: s.encodeMs,
          filter_ms: s.filterMs,
          first_stage_ms: s.firstStageMs,
          rescore_ms: s.rescoreMs,
        },
        recall: recallView(r.recall),
      };
    },
  );
};
