/**
 * Prometheus metrics at GET /metrics, through prom-client: requests and durations per route, the
 * model queue depth, batch sizes and tokens, whatever gauges other modules contribute (index
 * sizes, training job states) through `extraGauges`, and prom-client's default process metrics
 * (resident memory, heap, CPU, event-loop lag, GC, open handles and file descriptors).
 *
 * Each app has its own Registry (never prom-client's global one), so that a process can build
 * many apps, as the tests do.
 */
import type { FastifyInstance } from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Encoder } from '../../encoder/encoder.js';
import { errorResponses } from '../schemas/errors.js';

/** A gauge whose samples are read when scraped. A gauge that fails to read has no samples. */
export interface GaugeSource {
  name: string;
  help: string;
  /** The label names the samples carry (every sample carries all of them); none when omitted. */
  labelNames?: readonly string[];
  collect: () => { labels?: Record<string, string>; value: number }[];
}

function scrapedGauge(registry: Registry, source: GaugeSource): Gauge {
  return new Gauge({
    name: source.name,
    help: source.help,
    labelNames: source.labelNames ?? [],
    registers: [registry],
    collect() {
      this.reset();
      try {
        for (const s of source.collect()) this.set(s.labels ?? {}, s.value);
      } catch {
        this.reset();
      }
    },
  });
}

export function metricsPlugin(app: FastifyInstance, deps: { encoder: () => Encoder; extraGauges?: GaugeSource[] }): void {
  const registry = new Registry();
  const registers = [registry];
  const requests = new Counter({
    name: 'qembed_http_requests_total',
    help: 'HTTP requests by route, method and status code.',
    labelNames: ['route', 'method', 'status'],
    registers,
  });
  const durations = new Histogram({
    name: 'qembed_http_request_duration_seconds',
    help: 'HTTP request durations by route.',
    labelNames: ['route'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  scrapedGauge(registry, { name: 'qembed_queue_depth', help: 'Texts of requests waiting for or inside the model.', collect: () => [{ value: deps.encoder().queueDepth() }] });
  scrapedGauge(registry, {
    name: 'qembed_background_queue_depth',
    help: 'Texts of background work (re-encoding) waiting for or inside the model.',
    collect: () => [{ value: deps.encoder().backgroundDepth() }],
  });
  const batchSizes = new Histogram({ name: 'qembed_batch_size', help: 'Texts per model batch.', buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256], registers });
  const tokens = new Counter({
    name: 'qembed_tokens_total',
    help: 'Tokens run through the model (kind="real") and with padding (kind="padded").',
    labelNames: ['kind'],
    registers,
  });
  const batchSeconds = new Histogram({
    name: 'qembed_batch_duration_seconds',
    help: 'Model time per batch.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  });
  for (const g of deps.extraGauges ?? []) scrapedGauge(registry, g);
  collectDefaultMetrics({ register: registry });

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
    durations.observe({ route }, reply.elapsedTime / 1000);
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
      void reply.type(registry.contentType);
      return registry.metrics();
    },
  );
}
