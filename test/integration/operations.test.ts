import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorOf, startTestApp, type TestApp } from '../helpers/app.js';

describe('API key', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ apiKey: 's3cret-key' });
  });
  afterAll(async () => t.close());

  it('leaves /health open', async () => {
    expect((await t.app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
  });

  it('refuses other routes without the key, and with a wrong one, changing nothing', async () => {
    const before = t.encoder.batchStats().texts;
    for (const headers of [{}, { authorization: 'Bearer nope' }, { authorization: 's3cret-key' }]) {
      const res = await t.app.inject({ method: 'POST', url: '/encode', payload: { inputs: 'x' }, headers });
      expect(res.statusCode).toBe(401);
      expect(errorOf(res).code).toBe('QEMBED_UNAUTHORIZED');
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    }
    expect((await t.app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(401);
    expect(t.encoder.batchStats().texts).toBe(before);
  });

  it('accepts the bearer key', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/encode', payload: { inputs: 'x' }, headers: { authorization: 'Bearer s3cret-key' } });
    expect(res.statusCode).toBe(200);
  });
});

describe('GET /metrics', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => t.close());

  it('exposes request counts and durations per route, queue depth, batch sizes and tokens', async () => {
    await t.app.inject({ method: 'POST', url: '/encode', payload: { inputs: ['one', 'two words'] } });
    await t.app.inject({ method: 'POST', url: '/encode', payload: { inputs: '' } });
    const res = await t.app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = res.body;
    expect(text).toMatch(/qembed_http_requests_total\{route="\/encode",method="POST",status="200"\} 1/);
    expect(text).toMatch(/qembed_http_requests_total\{route="\/encode",method="POST",status="400"\} 1/);
    expect(text).toMatch(/qembed_http_request_duration_seconds_count\{route="\/encode"\} 2/);
    expect(text).toMatch(/qembed_queue_depth 0/);
    expect(text).toMatch(/qembed_batch_size_count \d+/);
    expect(text).toMatch(/qembed_tokens_total\{kind="real"\} \d+/);
  });

  it('keeps the qembed_* names and types, and adds the default process metrics', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/metrics' });
    const types = new Map([...res.body.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1] ?? '', m[2] ?? '']));
    expect(Object.fromEntries([...types].filter(([name]) => name.startsWith('qembed_')))).toEqual({
      qembed_http_requests_total: 'counter',
      qembed_http_request_duration_seconds: 'histogram',
      qembed_queue_depth: 'gauge',
      qembed_background_queue_depth: 'gauge',
      qembed_batch_size: 'histogram',
      qembed_tokens_total: 'counter',
      qembed_batch_duration_seconds: 'histogram',
      qembed_index_documents: 'gauge',
      qembed_index_memory_bytes: 'gauge',
      qembed_collection_recall_at_10: 'gauge',
      qembed_collection_auto_multiplier: 'gauge',
      qembed_collection_recall_measured_queries: 'gauge',
      qembed_training_jobs: 'gauge',
    });
    expect(res.body).toContain('# HELP qembed_queue_depth Texts of requests waiting for or inside the model.');
    expect(types.get('process_resident_memory_bytes')).toBe('gauge');
    expect(types.get('process_cpu_seconds_total')).toBe('counter');
    expect(types.get('nodejs_eventloop_lag_seconds')).toBe('gauge');
    expect(types.get('nodejs_heap_size_used_bytes')).toBe('gauge');
    expect(types.get('nodejs_gc_duration_seconds')).toBe('histogram');
    expect(res.body).toMatch(/^process_resident_memory_bytes [1-9]\d*$/m);
  });

  it('gives each app its own registry', async () => {
    // A second app in the same process registers the same names without clashing, and counts its own requests.
    const other = await startTestApp();
    try {
      const res = await other.app.inject({ method: 'GET', url: '/metrics' });
      expect(res.statusCode).toBe(200);
      expect(res.body).not.toContain('qembed_http_requests_total{route="/encode"');
      expect(res.body).toContain('process_resident_memory_bytes');
    } finally {
      await other.close();
    }
  });
});

describe('Swagger UI', () => {
  it('serves /docs', async () => {
    const t = await startTestApp();
    try {
      const res = await t.app.inject({ method: 'GET', url: '/docs/' });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/text\/html/);
    } finally {
      await t.close();
    }
  });
});
