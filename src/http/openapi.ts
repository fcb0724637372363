/**
 * The OpenAPI document, produced by @fastify/swagger from the route schemas (the single
 * source) with the default configuration. `npm run openapi` writes openapi/openapi.json and a
 * test fails when the committed file differs from what the routes produce.
 */
import path from 'node:path';
import { buildApp } from '../app.js';
import { loadConfig } from '../config.js';
import type { Encoder } from '../encoder/encoder.js';
import { projectRoot } from '../paths.js';
import { openDatabase } from '../store/database.js';

export const openapiFile = path.join(projectRoot, 'openapi', 'openapi.json');

export async function generateOpenApi(): Promise<string> {
  const db = openDatabase({ file: ':memory:' });
  const noEncoder = (): Encoder => {
    throw new Error('the OpenAPI document is built without a model');
  };
  const app = await buildApp({ config: loadConfig({}), encoder: noEncoder, db, logger: false });
  await app.ready();
  const spec = app.swagger();
  await app.close();
  db.close();
  return `${JSON.stringify(spec, null, 2)}\n`;
}
