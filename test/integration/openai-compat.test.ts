/**
 * The OpenAI-compatible API driven by the official `openai` npm client, pointed at the service:
 * the vectors must be /encode's for the same texts, in float and base64, batched, truncated to
 * fewer dimensions, and errors must surface as the SDK's typed errors.
 *
 * float32 comparison: both sides are the same float32 vector (base64 carries its exact bytes;
 * JSON numbers print the shortest decimal that reads back to the same float32 after the
 * float64 round trip), so a cosine >= 0.99999 leaves room only for a different vector.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI, { APIError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cosine } from '../../src/quantization/similarity.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { bundleCopy, recalibratedCopy } from '../helpers/bundles.js';

let t: TestApp;
let client: OpenAI;
let model: string;
beforeAll(async () => {
  t = await startTestApp({ maxInputs: 8 });
  const address = await t.app.listen({ port: 0, host: '127.0.0.1' });
  client = new OpenAI({ apiKey: 'unused', baseURL: `${address}/v1`, maxRetries: 0 });
  model = t.encoder.bundle.manifest.name;
});
afterAll(async () => t.close());

const texts = Array.from({ length: 19 }, (_, i) => `text number ${i} about ${['rivers', 'cities', 'music'][i % 3]}`);

async function encode(inputs: string[], extra: Record<string, unknown> = {}): Promise<number[][]> {
  const res = await t.app.inject({ method: 'POST', url: '/encode', payload: { inputs, ...extra } });
  expect(res.statusCode, res.body).toBe(200);
  return (res.json() as { embeddings: number[][] }).embeddings;
}

describe('/v1/embeddings with the official openai client', () => {
  it('returns /encode vectors by default (base64 on the wire, decoded by the SDK) and with encoding_format float', async () => {
    const expected = await encode(texts.slice(0, 8));
    const viaDefault = await client.embeddings.create({ model, input: texts.slice(0, 8) });
    const viaFloat = await client.embeddings.create({ model, input: texts.slice(0, 8), encoding_format: 'float' });
    for (const res of [viaDefault, viaFloat]) {
      expect(res.object).toBe('list');
      expect(res.model).toBe(model);
      expect(res.data.map((d) => d.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      res.data.forEach((d, i) => expect(cosine(d.embedding, expected[i]!)).toBeGreaterThanOrEqual(0.99999));
      expect(res.usage.prompt_tokens).toBeGreaterThan(0);
      expect(res.usage.total_tokens).toBe(res.usage.prompt_tokens);
    }
  });

  it('takes more texts than one model batch (QEMBED_MAX_INPUTS is 8 here) and one string', async () => {
    const res = await client.embeddings.create({ model, input: texts, encoding_format: 'float' });
    expect(res.data).toHaveLength(19);
    const expected = [...(await encode(texts.slice(0, 8))), ...(await encode(texts.slice(8, 16))), ...(await encode(texts.slice(16)))];
    res.data.forEach((d, i) => expect(cosine(d.embedding, expected[i]!)).toBeGreaterThanOrEqual(0.99999));
    const one = await client.embeddings.create({ model, input: texts[0]!, encoding_format: 'float' });
    expect(one.data).toHaveLength(1);
    expect(cosine(one.data[0]!.embedding, expected[0]!)).toBeGreaterThanOrEqual(0.99999);
  });

  it('truncates to `dimensions` and renormalizes, as /encode does', async () => {
    const res = await client.embeddings.create({ model, input: texts.slice(0, 4), dimensions: 16 });
    const expected = await encode(texts.slice(0, 4), { dimensions: 16 });
    const full = await encode(texts.slice(0, 4));
    res.data.forEach((d, i) => {
      expect(d.embedding).toHaveLength(16);
      expect(cosine(d.embedding, expected[i]!)).toBeGreaterThanOrEqual(0.99999);
      // The first 16 dimensions of the full vector, in the same direction, at unit length.
      expect(cosine(d.embedding, full[i]!.slice(0, 16))).toBeGreaterThanOrEqual(0.99999);
      expect(Math.hypot(...d.embedding)).toBeCloseTo(1, 5);
    });
  });

  it('serves quantized codes as integers whatever the encoding (the SDK would misread base64 bytes)', async () => {
    for (const precision of ['int8', 'ubinary'] as const) {
      const res = await client.embeddings.create({ model, input: texts.slice(0, 3), precision, input_type: 'query' } as OpenAI.EmbeddingCreateParams);
      const expected = await encode(texts.slice(0, 3), { precision, input_type: 'query' });
      expect(res.data.map((d) => d.embedding)).toEqual(expected);
    }
  });

  it('raises the SDK errors: 404 for another model, 400 for token ids and bad dimensions', async () => {
    const other = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'x' }).catch((e: unknown) => e);
    expect(other).toBeInstanceOf(OpenAI.NotFoundError);
    expect((other as APIError).code).toBe('QEMBED_MODEL_NOT_FOUND');
    expect((other as APIError).param).toBe('model');
    const tokens = await client.embeddings.create({ model, input: [[101, 2023, 102]] }).catch((e: unknown) => e);
    expect(tokens).toBeInstanceOf(OpenAI.BadRequestError);
    expect((tokens as APIError).message).toContain('check_embedding_ctx_length=False');
    for (const dimensions of [0, t.encoder.dimension + 1]) {
      const bad = await client.embeddings.create({ model, input: 'x', dimensions }).catch((e: unknown) => e);
      expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
      expect((bad as APIError).code).toBe('QEMBED_INVALID_DIMENSIONS');
      expect((bad as APIError).param).toBe('dimensions');
    }
  });

  it('lists the models in OpenAI shape', async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toContain(model);
    const one = await client.models.retrieve(model);
    expect(one).toMatchObject({ id: model, object: 'model', owned_by: 'qembed' });
    await expect(client.models.retrieve('nope')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });
});

describe('/v1 errors in OpenAI shape', () => {
  const post = (payload: unknown) => t.app.inject({ method: 'POST', url: '/v1/embeddings', payload: payload as object });
  it.each([
    [{ model: 'x' }, 400, 'QEMBED_INVALID_REQUEST'],
    [{ input: [], model: 'M' }, 400, 'QEMBED_EMPTY_INPUT'],
    [{ input: [''], model: 'M' }, 400, 'QEMBED_EMPTY_INPUT'],
    [{ input: Array(2049).fill('a'), model: 'M' }, 413, 'QEMBED_TOO_MANY_INPUTS'],
    [{ input: [1.5, 2], model: 'M' }, 400, 'QEMBED_INVALID_REQUEST'],
    [{ input: 'a', model: 'M', encoding_format: 'hex' }, 400, 'QEMBED_INVALID_REQUEST'],
    [{ input: 'a', model: 'M', precision: 'int4' }, 400, 'QEMBED_UNKNOWN_PRECISION'],
    [{ input: 'a', model: 'M', dimensions: 12, precision: 'binary' }, 400, 'QEMBED_INVALID_DIMENSIONS'],
    [{ input: 'a', model: 'M', surprise: 1 }, 400, 'QEMBED_INVALID_REQUEST'],
  ])('%j -> %i %s', async (body, status, code) => {
    const payload = { ...body, model: (body as { model?: string }).model === 'M' ? model : (body as { model?: string }).model };
    const res = await post(payload);
    expect(res.statusCode).toBe(status);
    const error = (res.json() as { error: { message: string; type: string; param: string | null; code: string } }).error;
    expect(error.code).toBe(code);
    expect(error.type).toBe('invalid_request_error');
    expect(typeof error.message).toBe('string');
    expect(error).toHaveProperty('param');
  });

  it('answers an unknown /v1 route with an OpenAI-shaped 404', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/v1/nothing' });
    expect(res.statusCode).toBe(404);
    expect((res.json() as { error: { type: string } }).error.type).toBe('not_found_error');
  });
});

describe('a full queue on the compatible APIs', () => {
  it('answers 429 with Retry-After in each API shape, and the accepted request completes', async () => {
    const small = await startTestApp({ maxInputs: 4, queueSize: 4 });
    try {
      const name = small.encoder.bundle.manifest.name;
      const texts = ['one text', 'two texts', 'three texts', 'four texts'];
      for (const [url, payload] of [
        ['/v1/embeddings', { model: name, input: texts }],
        ['/v2/embed', { model: name, texts }],
      ] as const) {
        const results = await Promise.all([1, 2, 3].map(() => small.app.inject({ method: 'POST', url, payload })));
        expect(results.map((r) => r.statusCode).sort()).toEqual([200, 429, 429]);
        const rejected = results.find((r) => r.statusCode === 429)!;
        expect(Number(rejected.headers['retry-after'])).toBeGreaterThanOrEqual(1);
        const body = rejected.json() as { error?: { type: string; code: string }; code?: string };
        expect(body.error?.code ?? body.code).toBe('QEMBED_QUEUE_FULL');
        if (url === '/v1/embeddings') expect(body.error?.type).toBe('rate_limit_error');
      }
      expect(small.encoder.queueDepth()).toBe(0);
    } finally {
      await small.close();
    }
  });
});

describe('an API key on the compatible APIs', () => {
  it('is what the SDKs send as their api_key; a wrong one is a 401 in OpenAI shape', async () => {
    const keyed = await startTestApp({ apiKey: 'secret-key' });
    try {
      const address = await keyed.app.listen({ port: 0, host: '127.0.0.1' });
      const name = keyed.encoder.bundle.manifest.name;
      const good = new OpenAI({ apiKey: 'secret-key', baseURL: `${address}/v1`, maxRetries: 0 });
      expect((await good.embeddings.create({ model: name, input: 'x' })).data).toHaveLength(1);
      const bad = new OpenAI({ apiKey: 'wrong', baseURL: `${address}/v1`, maxRetries: 0 });
      const error = await bad.embeddings.create({ model: name, input: 'x' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OpenAI.AuthenticationError);
      expect((error as APIError).type).toBe('authentication_error');
    } finally {
      await keyed.close();
    }
  });
});

describe('/v1/models beside other bundles', () => {
  it('lists only the model /v1/embeddings accepts, so that models.list().data[0] embeds; the others are not found', async () => {
    // A models folder as `scripts/test` builds it: the served bundle among others that are not
    // served (one sharing its name, one with its own), in whatever order the folder lists them.
    const models = mkdtempSync(path.join(tmpdir(), 'qembed-v1-models-'));
    const served = bundleCopy(() => {}, { parent: models, name: 'b-served' });
    const twin = bundleCopy((m) => (m.calibration.max = m.calibration.max.map((x) => x + 0.07)), { parent: models, name: 'a-float32' });
    const other = recalibratedCopy(models, 'a-other');
    const several = await startTestApp({ modelsDir: models, modelDir: served });
    try {
      const address = await several.app.listen({ port: 0, host: '127.0.0.1' });
      const sdk = new OpenAI({ apiKey: 'unused', baseURL: `${address}/v1`, maxRetries: 0 });
      expect(several.registry.list().filter((m) => m.fingerprint)).toHaveLength(3);
      const list = await sdk.models.list();
      // The served bundle's name is shared with a bundle not served: it is listed by fingerprint.
      expect(list.data.map((m) => m.id)).toEqual([several.encoder.fingerprint]);
      const first = list.data[0]!.id;
      const embedded = await sdk.embeddings.create({ model: first, input: 'rivers', encoding_format: 'float' });
      expect(embedded.data[0]!.embedding).toHaveLength(several.encoder.dimension);
      expect((await sdk.models.retrieve(first)).id).toBe(first);
      for (const unserved of [twin, other].map((dir) => several.registry.list().find((m) => m.dir === path.resolve(dir))!.fingerprint)) {
        await expect(sdk.models.retrieve(unserved)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
        await expect(sdk.embeddings.create({ model: unserved, input: 'rivers' })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
      }
    } finally {
      await several.close();
      rmSync(models, { recursive: true, force: true });
    }
  });
});
