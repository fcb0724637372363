/** POST /search: binary first stage over the collection's index, then int8 rescoring. */
import type { FastifyPluginAsync } from 'fastify';
import {
  FILTER_KEY_PATTERN,
  FILTER_MAX_KEYS,
  FIRST_STAGES,
  type FirstStage,
  RESCORE_MULTIPLIER_MAX,
  type SearchService,
  TOP_K_MAX,
} from '../../search/search-service.js';
import type { MetadataFilter } from '../../store/store.js';
import { errorResponses } from '../schemas/errors.js';
import { collectionNameSchema } from '../schemas/collections.js';
import { type EncodeLimits, textSchema } from '../schemas/texts.js';

interface SearchBody {
  collection: string;
  query?: string;
  vector?: number[];
  model?: string;
  top_k?: number;
  rescore_multiplier?: number;
  rescore?: boolean;
  first_stage?: FirstStage;
  filter?: MetadataFilter;
}

const statsSchema = {
  type: 'object',
  required: ['documents_scanned', 'candidates', 'candidates_rescored', 'encode_ms', 'filter_ms', 'first_stage_ms', 'rescore_ms'],
  properties: {
    documents_scanned: { type: 'integer', description: 'Documents whose Hamming distance was computed (all, or those the filter matched)' },
    candidates: { type: 'integer', description: 'Documents the first stage kept (top_k × rescore_multiplier, or top_k without rescoring)' },
    candidates_rescored: { type: 'integer', description: 'Candidates scored with their int8 codes' },
    encode_ms: { type: 'number', description: 'Encoding the query (0 for a vector)' },
    filter_ms: { type: 'number', description: 'Finding the documents the filter matches (SQLite)' },
    first_stage_ms: { type: 'number', description: 'Top-k of the first stage over the binary codes in memory' },
    rescore_ms: { type: 'number', description: "Reading the candidates' int8 codes and scoring them" },
  },
} as const;

export const searchRoutes: FastifyPluginAsync<{ search: SearchService; limits: EncodeLimits }> = async (app, deps) => {
  app.post<{ Body: SearchBody }>(
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
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['collection'],
          properties: {
            collection: collectionNameSchema,
            query: { ...textSchema(deps.limits.maxInputChars), description: 'The query text; send this or `vector`' },
            vector: {
              type: 'array',
              minItems: 1,
              maxItems: 65536,
              items: { type: 'number' },
              description: "A float32 query embedding of the model's dimension (skips encoding); send this or `query`",
            },
            model: {
              type: 'string',
              description:
                "For a `vector`: the model (fingerprint or name) that computed it, when not the served one (e.g. a collection still being re-encoded holds the previous model's codes). With a `query`: the model you expect the collection's codes to be from. 409 QEMBED_MODEL_MISMATCH when they are another model's.",
            },
            top_k: { type: 'integer', minimum: 1, maximum: TOP_K_MAX, default: 10, description: `Hits to return, 1 to ${TOP_K_MAX}` },
            rescore_multiplier: {
              type: 'integer',
              minimum: 1,
              maximum: RESCORE_MULTIPLIER_MAX,
              default: 4,
              description: `The first stage keeps top_k × rescore_multiplier candidates for rescoring (1 to ${RESCORE_MULTIPLIER_MAX})`,
            },
            rescore: { type: 'boolean', default: true, description: 'Rescore the candidates with their int8 codes' },
            first_stage: {
              type: 'string',
              enum: FIRST_STAGES,
              default: 'hamming',
              description:
                '`hamming`: distance between the binary query code and the documents\' codes; `asymmetric`: a 4-bit query scored ' +
                'against the documents\' sign bits (finds a little more of the float32 top-k, costs about 6× the first-stage time; see docs/search.md)',
            },
            filter: {
              type: 'object',
              maxProperties: FILTER_MAX_KEYS,
              propertyNames: { pattern: FILTER_KEY_PATTERN },
              additionalProperties: { anyOf: [{ type: 'string' }, { type: 'number' }, { type: 'boolean' }, { type: 'null' }] },
              description:
                `Equality on top-level metadata keys (up to ${FILTER_MAX_KEYS}, all must match); values are strings, numbers, ` +
                'booleans or null, and match the same JSON type only (true does not match 1)',
            },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['hits', 'stats'],
            properties: {
              hits: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['id', 'score', 'text', 'metadata'],
                  properties: {
                    id: { type: 'string' },
                    score: {
                      type: 'number',
                      description:
                        'Approximate float32 dot product (rescored); without rescoring, 1 − 2·hamming/dimension, or for the asymmetric first stage the cosine between the 4-bit query and the sign vector',
                    },
                    text: { type: 'string', nullable: true, description: 'null for a document given as a vector without text' },
                    metadata: { type: 'object', additionalProperties: true },
                  },
                },
              },
              stats: statsSchema,
            },
          },
          ...errorResponses(400, 401, 404, 409, 413, 415, 429, 503),
        },
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
      };
    },
  );
};
