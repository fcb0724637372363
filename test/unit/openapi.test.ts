import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { generateOpenApi, openapiFile } from '../../src/http/openapi.js';

describe('openapi/openapi.json', () => {
  it('is what the route schemas produce (run `npm run openapi` after changing a route)', async () => {
    const committed = readFileSync(openapiFile, 'utf8');
    expect(committed).toBe(await generateOpenApi());
  });

  it('documents every route with its error responses', async () => {
    const spec = JSON.parse(await generateOpenApi());
    expect(spec.paths['/encode'].post.responses['400']).toBeDefined();
    expect(spec.paths['/encode'].post.responses['429']).toBeDefined();
    expect(spec.paths['/health'].get.responses['503']).toBeDefined();
    expect(spec.components.schemas.ErrorResponse).toBeDefined();
  });
});
