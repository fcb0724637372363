import { readFileSync } from 'node:fs';
import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';
import { generateOpenApi, openapiFile } from '../../src/service.js';

describe('openapi/openapi.json', () => {
  it('is what the route schemas produce (run `npm run openapi` after changing a route)', async () => {
    const committed = readFileSync(openapiFile, 'utf8');
    expect(committed).toBe(await generateOpenApi());
  });

  it('is valid OpenAPI 3.0', async () => {
    const result = await new Validator().validate(JSON.parse(readFileSync(openapiFile, 'utf8')));
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('documents on every operation the error statuses the server can return there', async () => {
    const spec = JSON.parse(await generateOpenApi());
    const missing: string[] = [];
    for (const [route, operations] of Object.entries(spec.paths as Record<string, Record<string, { responses: Record<string, unknown>; requestBody?: unknown; parameters?: { in: string }[] }>>)) {
      for (const [method, op] of Object.entries(operations)) {
        const expected = ['503']; // new requests while shutting down
        if (route !== '/health') expected.push('401'); // QEMBED_API_KEY
        if (op.requestBody) expected.push('400', '413', '415'); // JSON body: malformed, too large, other media type
        if (op.parameters?.some((p) => p.in === 'path')) expected.push('400', '404');
        if (op.parameters?.some((p) => p.in === 'query')) expected.push('400');
        for (const status of expected) if (!op.responses[status]) missing.push(`${method.toUpperCase()} ${route} ${status}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('documents every route with its error responses', async () => {
    const spec = JSON.parse(await generateOpenApi());
    expect(spec.paths['/encode'].post.responses['400']).toBeDefined();
    expect(spec.paths['/encode'].post.responses['429']).toBeDefined();
    expect(spec.paths['/health'].get.responses['503']).toBeDefined();
    expect(spec.components.schemas.ErrorResponse).toBeDefined();
  });
});
