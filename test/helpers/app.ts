/** Builds the real app on the tiny fixture bundle and an in-memory database. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { type Config, loadConfig } from '../../src/config.js';
import { loadBundle } from '../../src/encoder/bundle.js';
import { createEncoder, type Encoder } from '../../src/encoder/encoder.js';
import { createFirstStageIndex, type FirstStageIndex } from '../../src/first-stage/first-stage.js';
import { keepInStep } from '../../src/first-stage/in-step.js';
import { createSearchService, type SearchService } from '../../src/search/search-service.js';
import { type Db, openDatabase } from '../../src/store/database.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/store/store.js';
import { createTrainJobs, type TrainJobs } from '../../src/jobs/train-jobs.js';
import { createActivation } from '../../src/models/activation.js';
import { createModelRegistry, type ModelRegistry } from '../../src/models/registry.js';
import { projectRoot } from '../../src/paths.js';

export const FIXTURE_BUNDLE = fileURLToPath(new URL('../fixtures/tiny-bundle', import.meta.url));

export interface TestApp {
  app: FastifyInstance;
  encoder: Encoder;
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

/**
 * The whole app over an in-memory database, the fixture bundle (unless modelDir is given), a
 * model registry over `modelsDir` and an in-memory training job queue.
 */
export async function startTestApp(overrides: Partial<Config> = {}): Promise<TestApp> {
  const config = loadConfig({}, { intraOpThreads: 1, ...overrides });
  const encoder = await createEncoder(await loadBundle(config.modelDir === 'auto' ? FIXTURE_BUNDLE : config.modelDir), config);
  const db = openDatabase({ file: ':memory:' });
  const registry = createModelRegistry({ modelsDir: config.modelsDir, initial: encoder, createEncoder: (b) => createEncoder(b, config) });
  const store = createSqliteStore(db);
  const firstStage = createFirstStageIndex(store);
  const search = createSearchService({ store, firstStage, encoder: () => registry.active(), encoderFor: (fp) => registry.loaded(fp) });
  const activation = createActivation({ registry, search, meta: store });
  const jobsDb = openDatabase({ file: ':memory:', migrationsDir: path.join(projectRoot, 'migrations', 'jobs') });
  const jobs = createTrainJobs(jobsDb);
  const app = await buildApp({
    config,
    encoder: () => registry.active(),
    storage: store,
    search,
    logger: false,
    models: { registry, activation },
    jobs: { jobs, datasetsDir: config.datasetsDir },
  });
  await app.ready();
  return {
    app,
    encoder,
    db,
    search,
    store: keepInStep(store, firstStage),
    firstStage,
    config,
    registry,
    jobs,
    async close() {
      await app.close();
      await registry.close();
      if (db.open) db.close();
      jobsDb.close();
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
