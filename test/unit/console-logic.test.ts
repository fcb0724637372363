/**
 * The web console's own arithmetic, outside the browser: what it reads from the boxes a user
 * types in, from GET /metrics, from /encode's bytes and from a job's progress (the browser tests
 * in test/console/ check the pages themselves).
 */
import { describe, expect, it } from 'vitest';
import { parseDocuments, parseFilter } from '../../console/src/inputs.js';
import { eta } from '../../console/src/jobs.js';
import { parseMetrics, routeFigures } from '../../console/src/metrics.js';
import { cosine, fromBase64, hamming, similarityMatrix } from '../../console/src/similarity.js';
import type { Job } from '../../console/src/types.js';

describe('console inputs', () => {
  it('reads a filter as key=value pairs with JSON scalars, or as a JSON object', () => {
    expect(parseFilter('')).toBeUndefined();
    expect(parseFilter(' lang = en , year=2024, draft=false, x=null, v=1.5 ')).toEqual({ lang: 'en', year: 2024, draft: false, x: null, v: 1.5 });
    // A number-like string stays a number (it matches numbers only, as the API's filter does).
    expect(parseFilter('{"code": "007"}')).toEqual({ code: '007' });
    expect(() => parseFilter('lang')).toThrow(/not key=value/);
  });

  it('reads documents as one text a line (ids from a stamp) or JSON lines', () => {
    expect(parseDocuments('first\n\n  second  \n{"id": "x", "text": "third", "metadata": {"a": 1}}', 'k')).toEqual([
      { id: 'k-1', text: 'first' },
      { id: 'k-2', text: 'second' },
      { id: 'x', text: 'third', metadata: { a: 1 } },
    ]);
  });
});

describe('console metrics', () => {
  const text = [
    '# HELP qembed_http_requests_total HTTP requests by route, method and status code.',
    'qembed_http_requests_total{route="/search",method="POST",status="200"} 18',
    'qembed_http_requests_total{route="/search",method="POST",status="400"} 2',
    'qembed_http_requests_total{route="/health",method="GET",status="200"} 5',
    'qembed_http_request_duration_seconds_bucket{le="0.005",route="/search"} 10',
    'qembed_http_request_duration_seconds_bucket{le="0.01",route="/search"} 18',
    'qembed_http_request_duration_seconds_bucket{le="0.025",route="/search"} 20',
    'qembed_http_request_duration_seconds_bucket{le="+Inf",route="/search"} 20',
    'qembed_http_request_duration_seconds_sum{route="/search"} 0.1',
    'qembed_http_request_duration_seconds_count{route="/search"} 20',
    'qembed_index_documents{collection="a \\"quoted\\" name"} 3',
  ].join('\n');

  it('parses samples with their labels, escapes included', () => {
    const samples = parseMetrics(text);
    expect(samples).toHaveLength(10);
    expect(samples.at(-1)).toEqual({ name: 'qembed_index_documents', labels: { collection: 'a "quoted" name' }, value: 3 });
  });

  it('sums requests and errors per route; the p95 is the first bucket holding 95% of them', () => {
    const [search, health] = routeFigures(parseMetrics(text));
    // 19 of 20 requests (95%) are within the 25 ms bucket, 18 within 10 ms.
    expect(search).toEqual({ route: '/search', requests: 20, errors: 2, meanMs: 5, p95Ms: 25 });
    expect(health).toMatchObject({ route: '/health', requests: 5, errors: 0 });
  });
});

describe('console similarities', () => {
  it('computes cosines and Hamming distances exactly on small vectors', () => {
    expect(cosine(Float64Array.from([1, 0]), Float64Array.from([0, 1]))).toBe(0);
    expect(cosine(Float64Array.from([3, 4]), Float64Array.from([6, 8]))).toBe(1);
    expect(hamming(Uint8Array.from([0b1010_1010, 0xff]), Uint8Array.from([0b0101_0101, 0xff]))).toBe(8);
  });

  it('decodes each precision as /encode packs it', () => {
    const f32 = Buffer.from(Float32Array.from([0.6, 0.8]).buffer).toString('base64');
    const f32b = Buffer.from(Float32Array.from([0.8, 0.6]).buffer).toString('base64');
    // 0.6·0.8 + 0.8·0.6 = 0.96, computed in float64 from float32 inputs: within 1e-7 of it.
    expect(similarityMatrix([fromBase64(f32), fromBase64(f32b)], 'float32')[0]![1]).toBeCloseTo(0.96, 7);
    // int8 is signed; uint8 is centred on 128, so 128 ± x reads as ±x: the same cosine.
    const i8 = (xs: number[]) => new Uint8Array(Int8Array.from(xs).buffer);
    expect(similarityMatrix([i8([10, -10]), i8([-10, 10])], 'int8')[0]![1]).toBe(-1);
    expect(similarityMatrix([Uint8Array.from([138, 118]), Uint8Array.from([118, 138])], 'uint8')[0]![1]).toBe(-1);
    expect(similarityMatrix([Uint8Array.from([0x0f]), Uint8Array.from([0xf0])], 'binary')).toEqual([
      [0, 8],
      [8, 0],
    ]);
  });
});

describe('console job times', () => {
  const job = (over: Partial<Job>): Job => ({
    id: 'j',
    state: 'running',
    created_at: '2026-01-01T00:00:00Z',
    started_at: '2026-01-01T00:00:00Z',
    finished_at: null,
    progress: 0.25,
    step: 25,
    total_steps: 100,
    loss: 1,
    message: null,
    cancel_requested: false,
    spec: {},
    result: null,
    ...over,
  });
  it('gives the time left at the rate so far, and none before a rate exists or after the end', () => {
    const now = Date.parse('2026-01-01T00:01:00Z');
    expect(eta(job({}), now)).toBe(180); // a quarter in 60 s: three quarters in 180 s
    expect(eta(job({ progress: 0 }), now)).toBeUndefined();
    expect(eta(job({ state: 'succeeded', progress: 1 }), now)).toBeUndefined();
    expect(eta(job({ state: 'queued', started_at: null }), now)).toBeUndefined();
  });
});
