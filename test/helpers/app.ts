/** Builds the real app on the tiny fixture bundle and an in-memory database. */
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { type Config, loadConfig } from '../../src/config.js';
import { loadBundle } from '../../src/encoder/bundle.js';
import { createEncoder, type Encoder } from '../../src/encoder/encoder.js';
import { createSearchService, type SearchService } from '../../src/search/search-service.js';
import { type Db, openDatabase } from '../../src/store/database.js';
import { createStore } from '../../src/store/store.js';

export const FIXTURE_BUNDLE = fileURLToPath(new URL('../fixtures/tiny-bundle', import.meta.url));

export interface TestApp {
  app: FastifyInstance;
  encoder: Encoder;
  db: Db;
  search: SearchService;
  config: Config;
  close(): Promise<void>;
}

export async function createTestEncoder(overrides: Partial<Config> = {}): Promise<Encoder> {
  const config = loadConfig({}, { intraOpThreads: 1, ...overrides });
  return createEncoder(await loadBundle(FIXTURE_BUNDLE), config);
}

export async function startTestApp(overrides: Partial<Config> = {}): Promise<TestApp> {
  const config = loadConfig({}, { intraOpThreads: 1, ...overrides });
  const encoder = await createEncoder(await loadBundle(config.modelDir === './models/default' ? FIXTURE_BUNDLE : config.modelDir), config);
  const db = openDatabase({ file: ':memory:' });
  const search = createSearchService({ store: createStore(db), encoder: () => encoder });
  const app = await buildApp({ config, encoder: () => encoder, db, search, logger: false });
  await app.ready();
  return {
    app,
    encoder,
    db,
    search,
    config,
    async close() {
      await app.close();
      await encoder.close();
      if (db.open) db.close();
    },
  };
}

/** The parsed JSON error of a response, asserting its shape. */
export function errorOf(res: { json(): unknown }): { code: string; message: string } {
  const body = res.json() as { error?: { code: string; message: string } };
  if (!body.error || typeof body.error.code !== 'string' || typeof body.error.message !== 'string') {
    throw new Error(`not an error response: ${JSON.stringify(body)}`);
  }
  return body.error;
}
