/**
 * Builds the real service through the composition root (src/composition.ts), as the server
 * does: the fixture bundle (unless modelDir is given), an in-memory database (or PostgreSQL when
 * databaseUrl is given), a model registry over `modelsDir` and an in-memory training job queue.
 */
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { type Config, loadConfig } from '../../src/config.js';
import { loadBundle } from '../../src/encoder/bundle.js';
import { createEncoder, type Encoder } from '../../src/encoder/encoder.js';
import { createFirstStageIndex, type FirstStageIndex } from '../../src/first-stage/first-stage.js';
import { keepInStep } from '../../src/first-stage/in-step.js';
import type { TrainJobs } from '../../src/jobs/train-jobs.js';
import type { ModelRegistry } from '../../src/models/registry.js';
import type { SearchService } from '../../src/search/search-service.js';
import { buildService } from '../../src/service.js';
import { type Db, openDatabase } from '../../src/store/database.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/store/store.js';

export const FIXTURE_BUNDLE = fileURLToPath(new URL('../fixtures/tiny-bundle', import.meta.url));

export interface TestApp {
  app: FastifyInstance;
  /** The encoder served at start. */
  encoder: Encoder;
  /** The SQLite database under the store (in memory); undefined on PostgreSQL. */
  db: Db;
  search: SearchService;
  /** The storage under `search` (its writes kept in step with `firstStage`), for tests that look at or prepare rows directly. */
  store: Store;
  firstStage: FirstStageIndex;
  config: Config;
  registry: ModelRegistry;
  jobs: TrainJobs;
  close(): Promise<void>;
}

export async function createTestEncoder(overrides: Partial<Config> = {}): Promise<Encoder> {
  const config = loadConfig({}, { intraOpThreads: 1, ...overrides });
  return createEncoder(await loadBundle(FIXTURE_BUNDLE), config);
}

/** A store over an in-memory SQLite database and its first stage: what a search service is built over. */
export function memoryStorage(): { store: Store; firstStage: FirstStageIndex } {
  const store = createSqliteStore(openDatabase({ file: ':memory:' }));
  return { store, firstStage: createFirstStageIndex(store) };
}

/** The whole service as the server composes it, over an in-memory database and the fixture bundle by default. */
export async function startTestApp(overrides: Partial<Config> = {}): Promise<TestApp> {
  const config = loadConfig({}, { intraOpThreads: 1, ...overrides });
  const service = await buildService(config, {
    database: config.databaseUrl ? 'configured' : 'memory',
    model: { dir: config.modelDir === 'auto' ? FIXTURE_BUNDLE : config.modelDir },
    jobs: 'memory',
  });
  await service.app.ready();
  const { parts } = service;
  return {
    app: service.app,
    encoder: parts.encoder(),
    db: parts.sqlite!,
    search: parts.search,
    store: keepInStep(parts.store, parts.firstStage),
    firstStage: parts.firstStage,
    config,
    registry: parts.models!.registry,
    jobs: parts.jobs!,
    close: () => service.close(),
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
