import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesPerVector, PRECISIONS } from '../../src/quantization/quantize.js';
import { errorOf, startTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ maxInputs: 8, maxInputChars: 2000, bodyLimitBytes: 64 * 1024, queueSize: 64 });
});
afterAll(async () => t.close());

const encode = (payload: unknown) => t.app.inject({ method: 'POST', url: '/encode', payload: payload as object });

interface EncodeResponse {
  model: { name: string; fingerprint: string };
  input_type: string;
  precision: string;
  encoding: string;
  dimension: number;
  bytes_per_vector: number;
  embeddings: (number[] | string)[];
  usage: { input_tokens: number; truncated_inputs: number[] };
}

describe('POST /encode', () => {
  it('embeds one string as float32 by default, with model, dimension and usage', async () => {
    const res = await encode({ inputs: 'binary codes are 32 times smaller' });
    expect(res.statusCode).toBe(200);
    const body = res.json() as EncodeResponse;
    expect(body.model.fingerprint).toBe(t.encoder.fingerprint);
    expect(body.precision).toBe('float32');
    expect(body.input_type).toBe('document');
    expect(body.dimension).toBe(t.encoder.dimension);
    expect(body.bytes_per_vector).toBe(4 * t.encoder.dimension);
    expect(body.embeddings).toHaveLength(1);
    const v = body.embeddings[0] as number[];
    expect(v).toHaveLength(t.encoder.dimension);
    expect(Math.hypot(...v)).toBeCloseTo(1, 5);
    expect(body.usage.input_tokens).toBeGreaterThan(2);
    expect(body.usage.truncated_inputs).toEqual([]);
    expect(res.headers['x-request-id']).toBeTruthy();
  });

  it('answers every precision with the bytes per vector it promises, json and base64 alike', async () => {
    const inputs = ['first text', 'a second, somewhat longer text about quantization'];
    for (const precision of PRECISIONS) {
      const json = (await encode({ inputs, precision })).json() as EncodeResponse;
      const b64 = (await encode({ inputs, precision, encoding: 'base64' })).json() as EncodeResponse;
      expect(json.bytes_per_vector).toBe(bytesPerVector(precision, t.encoder.dimension));
      json.embeddings.forEach((v, i) => {
        const bytes = Buffer.from(b64.embeddings[i] as string, 'base64');
        expect(bytes.length).toBe(json.bytes_per_vector);
        const decoded =
          precision === 'float32'
            ? Array.from(new Float32Array(new Uint8Array(bytes).buffer))
            : precision.startsWith('u')
              ? Array.from(new Uint8Array(bytes))
              : Array.from(new Int8Array(new Uint8Array(bytes).buffer));
        expect(decoded).toEqual(v);
      });
    }
  });

  it('quantizes with the bundle ranges: the codes equal the quantizer applied to the float32 answer', async () => {
    const inputs = ['calibrated ranges, not the batch'];
    const f32 = ((await encode({ inputs })).json() as EncodeResponse).embeddings[0] as number[];
    for (const precision of ['int8', 'uint8', 'binary', 'ubinary'] as const) {
      const codes = ((await encode({ inputs, precision })).json() as EncodeResponse).embeddings[0];
      expect(codes).toEqual(Array.from(t.encoder.quantizer.quantize(Float32Array.from(f32), precision)));
    }
  });

  it('quantizes one query exactly as it quantizes inside a larger batch', async () => {
    const text = 'how small can an embedding be?';
    const alone = ((await encode({ inputs: text, precision: 'int8', input_type: 'query' })).json() as EncodeResponse).embeddings[0];
    const batch = (await encode({ inputs: ['x', text, 'another query entirely', 'zzz'], precision: 'int8', input_type: 'query' })).json() as EncodeResponse;
    expect(batch.embeddings[1]).toEqual(alone);
  });

  it("applies the bundle's query and document prompts", async () => {
    const text = 'the same words';
    const q = (await encode({ inputs: text, input_type: 'query' })).json() as EncodeResponse;
    const d = (await encode({ inputs: text, input_type: 'document' })).json() as EncodeResponse;
    expect(t.encoder.bundle.manifest.prompts.query).not.toBe(t.encoder.bundle.manifest.prompts.document);
    expect(q.embeddings[0]).not.toEqual(d.embeddings[0]);
    expect(q.input_type).toBe('query');
  });

  it('truncates texts past max tokens by default and says which', async () => {
    const long = 'word '.repeat(t.encoder.maxTokens * 2);
    const res = await encode({ inputs: ['short', long] });
    expect(res.statusCode).toBe(200);
    const body = res.json() as EncodeResponse;
    expect(body.usage.truncated_inputs).toEqual([1]);
    expect(body.usage.input_tokens).toBeLessThanOrEqual(t.encoder.maxTokens + 10);
  });

  it('accepts the served model by fingerprint or name', async () => {
    expect((await encode({ inputs: 'x', model: t.encoder.fingerprint })).statusCode).toBe(200);
    expect((await encode({ inputs: 'x', model: t.encoder.bundle.manifest.name })).statusCode).toBe(200);
  });
});

describe('POST /encode refuses bad input with a 4xx JSON error and runs nothing', () => {
  const cases: [string, () => Promise<{ statusCode: number; json(): unknown; headers: Record<string, unknown> }>, number, string][] = [
    ['past max tokens with truncate false', () => encode({ inputs: ['ok', 'word '.repeat(400)], truncate: false }), 413, 'QEMBED_INPUT_TOO_LONG'],
    ['an empty string', () => encode({ inputs: '' }), 400, 'QEMBED_EMPTY_INPUT'],
    ['an empty string in a list', () => encode({ inputs: ['fine', ''] }), 400, 'QEMBED_EMPTY_INPUT'],
    ['an empty list', () => encode({ inputs: [] }), 400, 'QEMBED_EMPTY_INPUT'],
    ['too many inputs', () => encode({ inputs: Array.from({ length: 9 }, (_, i) => `t${i}`) }), 413, 'QEMBED_TOO_MANY_INPUTS'],
    ['a text past the character limit', () => encode({ inputs: 'x'.repeat(2001) }), 413, 'QEMBED_INPUT_TOO_LONG'],
    ['a non-string item', () => encode({ inputs: ['fine', 42] }), 400, 'QEMBED_INVALID_REQUEST'],
    ['inputs of the wrong type', () => encode({ inputs: 42 }), 400, 'QEMBED_INVALID_REQUEST'],
    ['missing inputs', () => encode({ precision: 'int8' }), 400, 'QEMBED_INVALID_REQUEST'],
    ['an unknown precision', () => encode({ inputs: 'x', precision: 'int4' }), 400, 'QEMBED_UNKNOWN_PRECISION'],
    ['an unknown input_type', () => encode({ inputs: 'x', input_type: 'passage' }), 400, 'QEMBED_UNKNOWN_INPUT_TYPE'],
    ['an unknown encoding', () => encode({ inputs: 'x', encoding: 'hex' }), 400, 'QEMBED_UNKNOWN_ENCODING'],
    ['an unknown property', () => encode({ inputs: 'x', normalize: false }), 400, 'QEMBED_INVALID_REQUEST'],
    ['truncate of the wrong type', () => encode({ inputs: 'x', truncate: 'no' }), 400, 'QEMBED_INVALID_REQUEST'],
    ['another model', () => encode({ inputs: 'x', model: 'some-other-model' }), 409, 'QEMBED_MODEL_MISMATCH'],
    [
      'malformed JSON',
      () => t.app.inject({ method: 'POST', url: '/encode', headers: { 'content-type': 'application/json' }, payload: '{"inputs": ["a",' }),
      400,
      'QEMBED_MALFORMED_JSON',
    ],
    [
      'an empty JSON body',
      () => t.app.inject({ method: 'POST', url: '/encode', headers: { 'content-type': 'application/json' }, payload: '' }),
      400,
      'QEMBED_MALFORMED_JSON',
    ],
    ['a JSON array body', () => t.app.inject({ method: 'POST', url: '/encode', payload: ['x'] as unknown as object }), 400, 'QEMBED_INVALID_REQUEST'],
    [
      'an oversized body',
      () => encode({ inputs: Array.from({ length: 8 }, () => 'y'.repeat(9000)) }),
      413,
      'QEMBED_BODY_TOO_LARGE',
    ],
    [
      'a body that is not JSON',
      () => t.app.inject({ method: 'POST', url: '/encode', headers: { 'content-type': 'text/plain' }, payload: 'hello' }),
      415,
      'QEMBED_UNSUPPORTED_MEDIA_TYPE',
    ],
    ['an unknown route', () => t.app.inject({ method: 'POST', url: '/embed', payload: {} }), 404, 'QEMBED_ROUTE_NOT_FOUND'],
  ];

  for (const [name, send, status, code] of cases) {
    it(name, async () => {
      const before = { ...t.encoder.batchStats() };
      const res = await send();
      expect(res.statusCode).toBe(status);
      expect(res.headers['content-type']).toMatch(/application\/json/);
      const error = errorOf(res);
      expect(error.code).toBe(code);
      expect(error.message.length).toBeGreaterThan(5);
      expect(t.encoder.batchStats().texts).toBe(before.texts);
      expect(t.encoder.queueDepth()).toBe(0);
    });
  }
});

describe('the bounded queue', () => {
  it('answers 429 with Retry-After when full, and the accepted request still completes', async () => {
    const small = await startTestApp({ maxInputs: 4, queueSize: 4 });
    try {
      const body = { inputs: ['one text', 'two texts', 'three texts', 'four texts'] };
      const results = await Promise.all([1, 2, 3].map(() => small.app.inject({ method: 'POST', url: '/encode', payload: body })));
      const codes = results.map((r) => r.statusCode).sort();
      expect(codes).toEqual([200, 429, 429]);
      const rejected = results.find((r) => r.statusCode === 429)!;
      expect(errorOf(rejected).code).toBe('QEMBED_QUEUE_FULL');
      expect(Number(rejected.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(small.encoder.queueDepth()).toBe(0);
    } finally {
      await small.close();
    }
  });
});
