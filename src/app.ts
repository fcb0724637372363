/**
 * buildApp(deps): the fastify application, plugins in a fixed order — swagger, error and
 * not-found handlers, then one route module per resource. Only src/http and this file know
 * about fastify.
 */
import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { Encoder } from './encoder/encoder.js';
import { errors } from './errors.js';
import { errorHandler } from './http/error-handler.js';
import { encodeRoutes } from './http/routes/encode.js';
import { healthRoutes } from './http/routes/health.js';
import { errorResponseSchema } from './http/schemas.js';
import { packageVersion } from './paths.js';
import type { Db } from './store/database.js';

export interface AppDeps {
  config: Pick<Config, 'maxInputs' | 'maxInputChars' | 'bodyLimitBytes'>;
  /** The encoder serving now (a getter: the active model can change while running). */
  encoder: () => Encoder;
  db: Db;
  logger?: Logger | false;
  /** True once a graceful shutdown started: health turns 503. */
  shuttingDown?: () => boolean;
}


export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    ...(deps.logger ? { loggerInstance: deps.logger } : { logger: false }),
    bodyLimit: deps.config.bodyLimitBytes,
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false } },
    return503OnClosing: true,
  }) as unknown as FastifyInstance;

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'qembed',
        version: packageVersion,
        description: 'Quantized embeddings: encode at float32/int8/uint8/binary/ubinary, store binary + int8 codes, search asymmetrically.',
      },
      tags: [
        { name: 'encode', description: 'Embeddings at a precision' },
        { name: 'health', description: 'Service state' },
      ],
    },
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  // JSON only: a text/plain body gets 415 instead of failing schema validation as a string.
  app.removeContentTypeParser('text/plain');
  app.addSchema(errorResponseSchema);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) => {
    const e = errors.routeNotFound(`no route ${request.method} ${request.url.split('?')[0]}`);
    void reply.code(e.statusCode).send({ error: { code: e.code, message: e.message } });
  });
  const shuttingDown = deps.shuttingDown ?? (() => false);
  app.addHook('onSend', async (request, reply) => {
    void reply.header('x-request-id', request.id);
    // While draining, ask keep-alive clients to hang up after this response so close() can finish.
    if (shuttingDown()) void reply.header('connection', 'close');
  });

  const limits = { maxInputs: deps.config.maxInputs, maxInputChars: deps.config.maxInputChars };
  healthRoutes(app, { encoder: deps.encoder, db: deps.db, shuttingDown });
  encodeRoutes(app, { encoder: deps.encoder, limits });
  return app;
}
