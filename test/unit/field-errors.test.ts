/**
 * The error handler maps validation failures by the rules declared on the failing field's schema
 * (http/schemas/field-errors.ts), not by route or field name: a route it has never seen gets its
 * codes from its schemas alone.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errors } from '../../src/errors.js';
import { errorHandler } from '../../src/http/error-handler.js';
import { anyBadValue, enumCode, withFieldErrors } from '../../src/http/schemas/field-errors.js';
import { StringEnum } from '../../src/http/schemas/json.js';
import { inputListSchema, textSchema } from '../../src/http/schemas/texts.js';

let app: FastifyInstance;
beforeAll(async () => {
  app = Fastify({ ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } } });
  app.setErrorHandler(errorHandler);
  const label = withFieldErrors(Type.String({ pattern: '^[a-z]+$' }), anyBadValue(errors.invalidJobName, 'lower-case letters'));
  app.post(
    '/made-up/:label',
    {
      schema: {
        params: Type.Object({ label }),
        body: Type.Object(
          {
            label,
            texts: inputListSchema(textSchema(5), 2),
            kind: Type.Optional(withFieldErrors(StringEnum(['a', 'b']), enumCode(errors.unknownPrecision))),
            // A rule on the object covers what is inside it, unless something nearer has its own.
            box: Type.Optional(
              withFieldErrors(Type.Object({ inner: Type.Integer(), text: textSchema(3) }, { additionalProperties: false }), anyBadValue(errors.invalidMetadata)),
            ),
          },
          { additionalProperties: false },
        ),
      },
    },
    async () => ({ ok: true }),
  );
  await app.ready();
});
afterAll(async () => app.close());

const post = async (body: unknown, label = 'ok') => {
  const res = await app.inject({ method: 'POST', url: `/made-up/${label}`, payload: body as object });
  return { status: res.statusCode, ...(res.json() as { error: { code: string; message: string } }).error };
};
const valid = { label: 'ok', texts: ['a'] };

describe('validation errors take the code their field declares', () => {
  it('in the body and in the path, with the hint', async () => {
    expect(await post({ ...valid, label: 'NO' })).toMatchObject({ status: 400, code: 'QEMBED_INVALID_JOB_NAME', message: expect.stringMatching(/^body\.label must match pattern .* \(lower-case letters\)$/) });
    expect(await post(valid, 'NO')).toMatchObject({ code: 'QEMBED_INVALID_JOB_NAME', message: expect.stringMatching(/^params\.label /) });
  });

  it('by keyword: a list and its texts keep the input codes', async () => {
    expect(await post({ ...valid, texts: [] })).toMatchObject({ status: 400, code: 'QEMBED_EMPTY_INPUT', message: 'body.texts must not be empty' });
    expect(await post({ ...valid, texts: ['a', 'b', 'c'] })).toMatchObject({ status: 413, code: 'QEMBED_TOO_MANY_INPUTS' });
    expect(await post({ ...valid, texts: ['toolong'] })).toMatchObject({ status: 413, code: 'QEMBED_INPUT_TOO_LONG', message: 'body.texts.0 is longer than 5 characters' });
    // No rule for a wrong type on either: the generic code.
    expect(await post({ ...valid, texts: [1] })).toMatchObject({ code: 'QEMBED_INVALID_REQUEST', message: 'body.texts.0 must be string' });
  });

  it('for an enum only when the value is not one of its values', async () => {
    expect(await post({ ...valid, kind: 'c' })).toMatchObject({ code: 'QEMBED_UNKNOWN_PRECISION', message: 'body.kind must be one of "a", "b"' });
    expect(await post({ ...valid, kind: 5 })).toMatchObject({ code: 'QEMBED_INVALID_REQUEST', message: 'body.kind must be string' });
  });

  it('from the nearest schema that has a rule for the keyword', async () => {
    expect(await post({ ...valid, box: { inner: 'x', text: 'a' } })).toMatchObject({ code: 'QEMBED_INVALID_METADATA', message: 'body.box.inner must be integer' });
    expect(await post({ ...valid, box: { inner: 1, text: 'long' } })).toMatchObject({ code: 'QEMBED_INPUT_TOO_LONG' });
    expect(await post({ ...valid, box: { inner: 1, text: 'a', more: 1 } })).toMatchObject({ code: 'QEMBED_INVALID_METADATA' });
  });

  it('never for a missing property, which is its object\'s fault', async () => {
    expect(await post({ ...valid, box: { text: 'a' } })).toMatchObject({ code: 'QEMBED_INVALID_REQUEST', message: 'body.box is missing the required property "inner"' });
    expect(await post({ texts: ['a'] })).toMatchObject({ code: 'QEMBED_INVALID_REQUEST', message: 'body is missing the required property "label"' });
  });
});
