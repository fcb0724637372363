/**
 * The Cohere-compatible /v2/embed: several embedding types from one call, each what /encode
 * returns for the same texts (byte for byte for int8/uint8/binary/ubinary, and exactly for
 * float: both are the same float32 values printed as JSON), Cohere-shaped answers and errors.
 * The official Cohere Python SDK drives it in sdk-clients.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
let model: string;
beforeAll(async () => {
  t = await startTestApp({ maxInputs: 4 });
  model = t.encoder.bundle.manifest.name;
});
afterAll(async () => t.close());

const texts = ['a river in spring', 'the city at night', 'music for a long drive', 'stars over the sea', 'a fifth text'];
const embed = (payload: Record<string, unknown>) => t.app.inject({ method: 'POST', url: '/v2/embed', payload });
/** /encode's answer for `texts`, in requests of QEMBED_MAX_INPUTS (4) texts. */
async function encode(extra: Record<string, unknown>): Promise<unknown[]> {
  const out: unknown[] = [];
  for (let i = 0; i < texts.length; i += 4) {
    const res = await t.app.inject({ method: 'POST', url: '/encode', payload: { inputs: texts.slice(i, i + 4), ...extra } });
    expect(res.statusCode, res.body).toBe(200);
    out.push(...(res.json() as { embeddings: unknown[] }).embeddings);
  }
  return out;
}

describe('/v2/embed', () => {
  it('returns every requested type from one call, equal to /encode, in batches past QEMBED_MAX_INPUTS', async () => {
    const res = await embed({ model, texts, input_type: 'search_query', embedding_types: ['float', 'int8', 'uint8', 'binary', 'ubinary'] });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json() as { id: string; embeddings: Record<string, unknown[]>; texts: string[]; meta: { billed_units: { input_tokens: number } } };
    expect(body.texts).toEqual(texts);
    expect(body.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(body.meta.billed_units.input_tokens).toBeGreaterThan(0);
    expect(body.embeddings.float).toEqual(await encode({ input_type: 'query' }));
    for (const precision of ['int8', 'uint8', 'binary', 'ubinary']) {
      expect(body.embeddings[precision]).toEqual(await encode({ input_type: 'query', precision }));
    }
  });

  it('maps input types to the prompts and truncates to output_dimension', async () => {
    const doc = (await embed({ model, texts, input_type: 'clustering', embedding_types: ['float'] })).json() as { embeddings: { float: number[][] } };
    expect(doc.embeddings.float).toEqual(await encode({ input_type: 'document' }));
    const short = (await embed({ model, texts, embedding_types: ['float', 'ubinary'], output_dimension: 16 })).json() as { embeddings: { float: number[][]; ubinary: number[][] } };
    expect(short.embeddings.float).toEqual(await encode({ dimensions: 16 }));
    expect(short.embeddings.ubinary).toEqual(await encode({ dimensions: 16, precision: 'ubinary' }));
    expect(short.embeddings.ubinary[0]).toHaveLength(2);
  });

  it('answers truncate NONE with 413 for an overlong text and refuses START', async () => {
    const long = 'word '.repeat(2000);
    const none = await embed({ model, texts: [long], truncate: 'NONE' });
    expect(none.statusCode).toBe(413);
    expect(none.json()).toMatchObject({ code: 'QEMBED_INPUT_TOO_LONG' });
    expect((await embed({ model, texts: [long], truncate: 'END' })).statusCode).toBe(200);
    const start = await embed({ model, texts: ['x'], truncate: 'START' });
    expect(start.statusCode).toBe(400);
    expect(start.json()).toMatchObject({ code: 'QEMBED_UNSUPPORTED_TRUNCATION' });
  });

  it.each([
    [{ model: 'embed-english-v3.0', texts: ['x'] }, 404, 'QEMBED_MODEL_NOT_FOUND'],
    [{ model: 'M', texts: [] }, 400, 'QEMBED_EMPTY_INPUT'],
    [{ model: 'M', texts: [[1, 2, 3]] }, 400, 'QEMBED_TOKEN_INPUTS'],
    [{ model: 'M', texts: ['x'], embedding_types: ['int4'] }, 400, 'QEMBED_INVALID_REQUEST'],
    [{ model: 'M', texts: ['x'], embedding_types: [] }, 400, 'QEMBED_INVALID_REQUEST'],
    [{ model: 'M', texts: ['x'], input_type: 'search' }, 400, 'QEMBED_UNKNOWN_INPUT_TYPE'],
    [{ model: 'M', texts: ['x'], output_dimension: 0 }, 400, 'QEMBED_INVALID_DIMENSIONS'],
  ])('refuses %j with %i %s in Cohere shape', async (body, status, code) => {
    const res = await embed({ ...body, model: body.model === 'M' ? model : body.model });
    expect(res.statusCode).toBe(status);
    const error = res.json() as { message: string; code: string };
    expect(error.code).toBe(code);
    expect(error.message.length).toBeGreaterThan(0);
  });
});
