/**
 * buildApp(deps): the fastify application, plugins in a fixed order — swagger, error and
 * not-found handlers, then one route module per resource. Only src/http and this file know
 * about fastify.
 */
import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { Encoder } from './encoder/encoder.js';
import { errors } from './errors.js';
import { errorHandler, headersOf, toQembedError, trackRoutes } from './http/error-handler.js';
import { toOpenApi30 } from './http/openapi-30.js';
import { apiKeyAuth } from './http/plugins/auth.js';
import { consolePlugin } from './http/plugins/console.js';
import { type GaugeSource, metricsPlugin } from './http/plugins/metrics.js';
import { collectionRoutes } from './http/routes/collections.js';
import { documentRoutes } from './http/routes/documents.js';
import { cohereRoutes } from './http/routes/cohere.js';
import { encodeRoutes } from './http/routes/encode.js';
import { healthRoutes } from './http/routes/health.js';
import { modelRoutes, type ModelsDeps } from './http/routes/models.js';
import { openaiRoutes } from './http/routes/openai.js';
import { searchRoutes } from './http/routes/search.js';
import { trainJobRoutes, type TrainJobsDeps } from './http/routes/train-jobs.js';
import { transformRoutes, type TransformRoutesDeps } from './http/routes/transforms.js';
import { errorResponseSchema } from './http/schemas/errors.js';
import type { ServedModel } from './models/encoder-choice.js';
import { consoleDir, packageVersion } from './paths.js';
import { RECALL_SUMMARY_MULTIPLIERS, type SearchService } from './search/search-service.js';
import type { StorageState } from './store/store.js';


export interface AppDeps {
  config: Pick<Config, 'maxInputs' | 'maxInputChars' | 'bodyLimitBytes' | 'apiKey' | 'requestTimeoutMs' | 'headersTimeoutMs' | 'keepAliveTimeoutMs'>;
  /** The encoder serving now (a getter: the active model can change while running). */
  encoder: () => Encoder;
  /** The store's medium, for GET /health (a probe write, storage full or not). */
  storage: StorageState;
  /** Collections, documents and search (composition.ts composes it over the store it picks). */
  search: SearchService;
  logger?: Logger | false;
  /** True once a graceful shutdown started: health turns 503. */
  shuttingDown?: () => boolean;
  /** Gauges other modules add to /metrics (index sizes, training jobs). */
  metricsGauges?: GaugeSource[];
  /** Model listing and activation (absent: those routes answer 503). */
  models?: ModelsDeps['models'];
  /** Training jobs (absent: those routes answer 503). */
  jobs?: TrainJobsDeps['jobs'];
  /** Transform fits (absent: those routes answer 503). */
  fits?: TransformRoutesDeps['fits'];
  /** How the model served at start was chosen (GET /health reports it). */
  served?: ServedModel;
}


interface QuerySchema {
  properties?: Record<string, { type?: string }>;
}

/**
 * Query strings are text: their numbers and booleans are converted here, and objects parsed
 * from JSON, for the parameters declared so (ajv's own coercion is off, so that JSON bodies are
 * never coerced). A value that does not convert stays text, for the schema to refuse with its
 * field's code.
 */
function coerceQuery(query: Record<string, unknown>, schema: QuerySchema): void {
  for (const [key, property] of Object.entries(schema.properties ?? {})) {
    const value = query[key];
    if (typeof value !== 'string') continue;
    if ((property.type === 'integer' || property.type === 'number') && /^-?\d+(\.\d+)?$/.test(value.trim())) query[key] = Number(value);
    else if (property.type === 'boolean' && (value === 'true' || value === 'false')) query[key] = value === 'true';
    else if (property.type === 'object') query[key] = jsonObject(value) ?? value;
  }
}

/** The JSON object `text` holds, or undefined. JSON.parse makes `__proto__` a plain own key: it reaches no prototype. */
function jsonObject(text: string): object | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    ...(deps.logger ? { loggerInstance: deps.logger } : { logger: false }),
    bodyLimit: deps.config.bodyLimitBytes,
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    // `x-consume`: @fastify/swagger's mark of a query parameter sent as JSON (documented with a content type); nothing to validate.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false, keywords: ['x-consume'] } },
    return503OnClosing: true,
    // Slow clients cannot hold connections: a stalled upload is cut (408), idle keep-alive
    // connections are closed; processing time itself is not limited.
    requestTimeout: deps.config.requestTimeoutMs,
    // Node checks the request and header timeouts on this interval (30 s by default).
    http: { connectionsCheckingInterval: Math.min(1000, deps.config.headersTimeoutMs) },
    keepAliveTimeout: deps.config.keepAliveTimeoutMs,
    clientErrorHandler: (error, socket) => {
      const code = (error as { code?: string }).code;
      const [status, reason, e] =
        code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'Request Timeout', errors.requestTimeout('the request was not received in time; send it again')]
          : code === 'HPE_HEADER_OVERFLOW'
            ? [431, 'Request Header Fields Too Large', errors.headersTooLarge('the request headers are too large')]
            : [400, 'Bad Request', errors.invalidRequest('the request is not valid HTTP')];
      const body = JSON.stringify({ error: { code: e.code, message: e.message } });
      if (socket.writable) {
        socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      } else {
        socket.destroy();
      }
    },
    // Document ids reach 256 characters (up to 3,072 bytes %-encoded); fastify's default of 100
    // answered 414 outside the error envelope. Above Node's 16 KiB header limit, so that an
    // overlong id is a 400 from the route's own validation (or a 431 for the whole line).
    routerOptions: { maxParamLength: 16_384 },
    // Errors raised before routing (a broken %-escape in the URL) get the same envelope.
    frameworkErrors: (error, _request, reply) => {
      const e = error.code === 'FST_ERR_BAD_URL' ? errors.badUrl('the URL has a malformed %-escape') : toQembedError(error);
      void (reply as FastifyReply).code(e.statusCode).send({ error: { code: e.code, message: e.message } });
    },
  }) as unknown as FastifyInstance;

  app.server.headersTimeout = deps.config.headersTimeoutMs;

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'qembed',
        version: packageVersion,
        description: 'Quantized embeddings: encode at float32/int8/uint8/binary/ubinary, store binary + int8 codes, search asymmetrically.',
      },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'Only when the service runs with QEMBED_API_KEY' } },
      },
      // The API key is optional: no security requirement, or the bearer key.
      security: [{}, { bearer: [] }],
      tags: [
        { name: 'encode', description: 'Embeddings at a precision' },
        { name: 'health', description: 'Service state' },
        { name: 'operations', description: 'Metrics and operations' },
        { name: 'collections', description: 'Collections of documents, bound to a model' },
        { name: 'documents', description: 'Documents stored with their binary and int8 codes' },
        { name: 'search', description: 'Binary first stage, int8 rescoring' },
        { name: 'models', description: 'Model bundles and the one being served' },
        { name: 'training', description: 'Training jobs run by the companion worker' },
        { name: 'openai', description: 'OpenAI-compatible embeddings API (errors in OpenAI\'s shape)' },
        { name: 'cohere', description: 'Cohere-compatible embed API, v2 (errors in Cohere\'s shape)' },
      ],
    },
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
    // A copy: the route schemas themselves stay the JSON Schema ajv validates with.
    transformObject: (documentObject) => toOpenApi30(structuredClone('openapiObject' in documentObject ? documentObject.openapiObject : documentObject.swaggerObject)),
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  // JSON only: a text/plain body gets 415 instead of failing schema validation as a string.
  app.removeContentTypeParser('text/plain');
  // An empty JSON body is no body: routes without one (DELETE, POST …/activate) accept it, as
  // many clients send the header anyway; routes with a body refuse it below.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string;
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    parseJson(request, text, (error, value) => {
      if (!error) return done(null, value);
      // Valid JSON that the secure parser refused: a key that could reach a prototype.
      try {
        JSON.parse(text);
      } catch {
        return done(error);
      }
      done(errors.forbiddenProperty('JSON objects in the body may not have the keys "__proto__" or "constructor" (with "prototype" inside)'));
    });
  });
  app.addHook('preValidation', async (request) => {
    const schema = request.routeOptions.schema;
    if (schema?.body && request.body === undefined) throw errors.malformedJson('the request body is empty; send a JSON object');
    if (schema?.querystring) coerceQuery(request.query as Record<string, unknown>, schema.querystring as QuerySchema);
  });
  app.addSchema(errorResponseSchema);
  app.setErrorHandler(errorHandler);
  trackRoutes(app);
  app.setNotFoundHandler((request, reply) => {
    const e = app.unmatchedRoute(request.method, request.url);
    void reply.code(e.statusCode).headers(headersOf(e)).send({ error: { code: e.code, message: e.message } });
  });
  const shuttingDown = deps.shuttingDown ?? (() => false);
  app.addHook('onSend', async (request, reply) => {
    void reply.header('x-request-id', request.id);
    // While draining, ask keep-alive clients to hang up after this response so close() can finish.
    if (shuttingDown()) void reply.header('connection', 'close');
  });

  apiKeyAuth(app, deps.config.apiKey || undefined);
  const { search } = deps;
  const indexGauges: GaugeSource[] = [
    {
      name: 'qembed_index_documents',
      help: 'Documents in the in-memory search index, by collection.',
      labelNames: ['collection'],
      collect: () => search.listCollections().flatMap((c) => (c.index ? [{ labels: { collection: c.name }, value: c.index.documents }] : [])),
    },
    {
      name: 'qembed_index_memory_bytes',
      help: 'Bytes held by the in-memory search index, by collection.',
      labelNames: ['collection'],
      collect: () => search.listCollections().flatMap((c) => (c.memoryBytes !== null ? [{ labels: { collection: c.name }, value: c.memoryBytes }] : [])),
    },
    {
      name: 'qembed_collection_recall_at_10',
      help: `Recall@10 measured on the collection's sampled queries (docs/search.md), by first stage and rescore multiplier (${RECALL_SUMMARY_MULTIPLIERS.join(', ')}); absent before any measurement.`,
      labelNames: ['collection', 'first_stage', 'multiplier'],
      collect: () =>
        search.listCollections().flatMap((c) =>
          Object.entries(c.quality.firstStages).flatMap(([stage, q]) =>
            q.recall.filter((r) => RECALL_SUMMARY_MULTIPLIERS.includes(r.multiplier)).map((r) => ({ labels: { collection: c.name, first_stage: stage, multiplier: String(r.multiplier) }, value: r.recall })),
          ),
        ),
    },
    {
      name: 'qembed_collection_auto_multiplier',
      help: 'The rescore multiplier `rescore_multiplier: "auto"` uses now (top_k 10), by collection and first stage.',
      labelNames: ['collection', 'first_stage'],
      collect: () =>
        search.listCollections().flatMap((c) => Object.entries(c.quality.firstStages).map(([stage, q]) => ({ labels: { collection: c.name, first_stage: stage }, value: q.autoMultiplier }))),
    },
    {
      name: 'qembed_collection_recall_measured_queries',
      help: "Measurements the collection's recall estimates rest on, by basis (served queries, or documents standing in for them).",
      labelNames: ['collection', 'basis'],
      collect: () => search.listCollections().flatMap((c) => (c.quality.basis ? [{ labels: { collection: c.name, basis: c.quality.basis }, value: c.quality.measured }] : [])),
    },
  ];
  metricsPlugin(app, { encoder: deps.encoder, extraGauges: [...indexGauges, ...(deps.metricsGauges ?? [])] });

  const limits = { maxInputs: deps.config.maxInputs, maxInputChars: deps.config.maxInputChars };
  await consolePlugin(app, { dir: consoleDir });
  await app.register(healthRoutes, { encoder: deps.encoder, storage: deps.storage, shuttingDown, served: deps.served });
  await app.register(encodeRoutes, { encoder: deps.encoder, limits });
  await app.register(collectionRoutes, { search, activation: deps.models?.activation });
  await app.register(documentRoutes, { search, limits });
  await app.register(searchRoutes, { search, limits });
  await app.register(modelRoutes, { models: deps.models });
  await app.register(trainJobRoutes, { jobs: deps.jobs, registry: deps.models?.registry });
  await app.register(transformRoutes, { search, ...(deps.fits && { fits: deps.fits }) });
  // Compatible APIs: their own error shapes, within their prefixes.
  await app.register(openaiRoutes, { prefix: '/v1', encoder: deps.encoder, limits, registry: deps.models?.registry });
  await app.register(cohereRoutes, { prefix: '/v2', encoder: deps.encoder, limits });
  return app;
}
