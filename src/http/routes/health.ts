/** GET /health: 200 when the model answers and the database accepts writes, 503 otherwise. */
import type { FastifyInstance } from 'fastify';
import type { Encoder } from '../../encoder/encoder.js';
import { type Db, probeWritable } from '../../store/database.js';

const healthSchema = {
  type: 'object',
  required: ['status', 'problems', 'queue_depth'],
  properties: {
    status: { type: 'string', enum: ['ok', 'unavailable'] },
    problems: { type: 'array', items: { type: 'string' } },
    model: {
      type: 'object',
      properties: {
        name: { type: 'string' },
        fingerprint: { type: 'string' },
        dimension: { type: 'integer' },
        max_tokens: { type: 'integer' },
        weights: { type: 'string', description: 'Precision of the model weights (float32, int8 …)' },
        prompts: { type: 'object', properties: { query: { type: 'string' }, document: { type: 'string' } } },
        execution_provider: { type: 'string', enum: ['cpu', 'cuda'] },
      },
    },
    queue_depth: { type: 'integer', description: 'Texts waiting for or inside the model' },
    database: { type: 'string', enum: ['ok', 'unavailable'] },
  },
} as const;

export function healthRoutes(app: FastifyInstance, deps: { encoder: () => Encoder; db: Db; shuttingDown: () => boolean }): void {
  app.get(
    '/health',
    { schema: { tags: ['health'], summary: 'Liveness and readiness', response: { 200: healthSchema, 503: healthSchema } } },
    async (_request, reply) => {
      const problems: string[] = [];
      const encoder = deps.encoder();
      if (!encoder.healthy()) problems.push('the model thread is not running');
      let database: 'ok' | 'unavailable' = 'ok';
      try {
        probeWritable(deps.db);
      } catch (e) {
        database = 'unavailable';
        problems.push(`the database does not accept writes: ${(e as Error).message}`);
      }
      if (deps.shuttingDown()) problems.push('shutting down');
      const m = encoder.bundle.manifest;
      void reply.code(problems.length === 0 ? 200 : 503);
      return {
        status: problems.length === 0 ? 'ok' : 'unavailable',
        problems,
        model: {
          name: m.name,
          fingerprint: encoder.fingerprint,
          dimension: encoder.dimension,
          max_tokens: encoder.maxTokens,
          weights: m.weights.precision,
          prompts: m.prompts,
          execution_provider: encoder.provider,
        },
        queue_depth: encoder.queueDepth(),
        database,
      };
    },
  );
}
