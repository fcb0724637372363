/**
 * Prometheus metrics at GET /metrics: requests and durations per route, the model queue depth,
 * batch sizes and tokens, and whatever gauges other modules contribute (index sizes, training
 * job states) through `extraGauges`.
 */
import type { FastifyInstance } from 'fastify';
import type { Encoder } from '../../encoder/encoder.js';
import { Counter, Gauge, Histogram, Registry } from '../metrics.js';
import { errorResponses } from '../schemas/errors.js';

export interface GaugeSource {
  name: string;
  help: string;
  collect: () => { labels?: Record<string, string>; value: number }[];
}

export function metricsPlugin(app: FastifyInstance, deps: { encoder: () => Encoder; extraGauges?: GaugeSource[] }): void {
  const registry = new Registry();
  const requests = registry.register(new Counter('qembed_http_requests_total', 'HTTP requests by route, method and status code.'));
  const durations = registry.register(
    new Histogram('qembed_http_request_duration_seconds', 'HTTP request durations by route.', [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]),
  );
  registry.register(new Gauge('qembed_queue_depth', 'Texts of requests waiting for or inside the model.', () => [{ value: deps.encoder().queueDepth() }]));
  registry.register(
    new Gauge('qembed_background_queue_depth', 'Texts of background work (re-encoding) waiting for or inside the model.', () => [{ value: deps.encoder().backgroundDepth() }]),
  );
  const batchSizes = registry.register(new Histogram('qembed_batch_size', 'Texts per model batch.', [1, 2, 4, 8, 16, 32, 64, 128, 256]));
  const tokens = registry.register(new Counter('qembed_tokens_total', 'Tokens run through the model (kind="real") and with padding (kind="padded").'));
  const batchSeconds = registry.register(new Histogram('qembed_batch_duration_seconds', 'Model time per batch.', [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]));
  for (const g of deps.extraGauges ?? []) registry.register(new Gauge(g.name, g.help, g.collect));

  // Listen to every encoder the app serves (the active one can change at run time).
  const listened = new WeakSet<Encoder>();
  const listen = () => {
    const encoder = deps.encoder();
    if (listened.has(encoder)) return;
    listened.add(encoder);
    encoder.onBatch((b) => {
      batchSizes.observe(b.size);
      batchSeconds.observe(b.seconds);
      tokens.inc({ kind: 'real' }, b.tokens);
      tokens.inc({ kind: 'padded' }, b.paddedTokens);
    });
  };

  app.addHook('onRequest', async () => listen());
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    requests.inc({ route, method: request.method, status: String(reply.statusCode) });
    durations.observe(reply.elapsedTime / 1000, { route });
  });

  app.get(
    '/metrics',
    {
      schema: {
        tags: ['operations'],
        summary: 'Prometheus metrics (text exposition format 0.0.4)',
        produces: ['text/plain'],
        response: { 200: { type: 'string', description: 'Prometheus text format' }, ...errorResponses(401) },
      },
    },
    async (_request, reply) => {
      listen();
      void reply.type('text/plain; version=0.0.4; charset=utf-8');
      return registry.render();
    },
  );
}
