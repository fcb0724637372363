/**
 * Composes the service from its parts: the database, the model to serve (the one activated at
 * run time if any, else QEMBED_MODEL_DIR), the model registry, search, activation, training
 * jobs and the HTTP app. server.ts adds the process concerns (signals, exit codes).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import { type Config, loadConfig } from './config.js';
import { loadBundle } from './encoder/bundle.js';
import { createEncoder, type Encoder } from './encoder/encoder.js';
import { createFirstStageIndex, type FirstStageIndex } from './first-stage/first-stage.js';
import { createTrainJobs, JOB_STATES, type TrainJobs } from './jobs/train-jobs.js';
import { ACTIVE_MODEL_KEY, activatedModelDir, createActivation } from './models/activation.js';
import { AUTO, resolveForConfig, type ServedModel } from './models/encoder-choice.js';
import { createModelRegistry, type ModelRegistry } from './models/registry.js';
import { projectRoot } from './paths.js';
import { createSearchService } from './search/search-service.js';
import { type Db, openDatabase } from './store/database.js';
import { setScanThreads } from './first-stage/scan-pool.js';
import { openPostgresStore } from './store/postgres/postgres-store.js';
import { createSqliteStore } from './store/sqlite/sqlite-store.js';
import type { Store } from './store/store.js';

/** How often an API process on a shared database checks for a model activated by another. */
const FOLLOW_INTERVAL_MS = 2000;

export const openapiFile = path.join(projectRoot, 'openapi', 'openapi.json');

/**
 * The OpenAPI document, produced by @fastify/swagger from the route schemas (the single source)
 * of the app composed over an empty database and no model. `npm run openapi` writes
 * openapi/openapi.json; a test fails when the committed file differs from it.
 */
export async function generateOpenApi(): Promise<string> {
  const db = openDatabase({ file: ':memory:' });
  const noEncoder = (): Encoder => {
    throw new Error('the OpenAPI document is built without a model');
  };
  const store = createSqliteStore(db);
  const search = createSearchService({ store, firstStage: createFirstStageIndex(store), encoder: noEncoder });
  const app = await buildApp({ config: loadConfig({}), encoder: noEncoder, storage: store, search, logger: false });
  await app.ready();
  const spec = app.swagger();
  await app.close();
  db.close();
  return `${JSON.stringify(spec, null, 2)}\n`;
}

export interface Service {
  app: FastifyInstance;
  registry: ModelRegistry;
  jobs: TrainJobs;
  /** Graceful: stop accepting, drain the requests in flight, then close everything. */
  close(): Promise<void>;
  /**
   * When draining takes too long: texts still waiting for the model are refused (503), the
   * batch in flight finishes, then the sessions and the databases close.
   */
  abort(): Promise<void>;
}

/** The jobs database is shared with worker processes, so unlike the main one it is not locked. */
export function openJobsDatabase(dataDir: string): Db {
  return openDatabase({ file: path.join(dataDir, 'jobs.sqlite'), exclusive: false, migrationsDir: path.join(projectRoot, 'migrations', 'jobs') });
}

/** The store QEMBED_DATABASE_URL names (PostgreSQL), else the SQLite file in QEMBED_DATA_DIR, and its first stage. */
function openStore(config: Config, logger: Logger): { store: Store; firstStage: FirstStageIndex; close: () => Promise<void> } {
  if (config.databaseUrl) {
    const store = openPostgresStore(config.databaseUrl, { firstStage: config.pgFirstStage });
    const where = new URL(config.databaseUrl);
    logger.info({ database: `postgres://${where.host}${where.pathname}` }, 'database open (PostgreSQL)');
    return { store, firstStage: createFirstStageIndex(store), close: () => store.close() };
  }
  const dbFile = path.join(config.dataDir, 'qembed.sqlite');
  const db = openDatabase({ file: dbFile });
  logger.info({ database: path.resolve(dbFile) }, 'database open');
  const store = createSqliteStore(db);
  return {
    store,
    firstStage: createFirstStageIndex(store),
    close: async () => {
      if (db.open) db.close();
    },
  };
}

export async function startService(config: Config, logger: Logger, shuttingDown: () => boolean): Promise<Service> {
  setScanThreads(config.searchThreads);
  const { store, firstStage, close: closeStore } = openStore(config, logger);
  const recorded = store.getMeta(ACTIVE_MODEL_KEY);
  const activated = activatedModelDir(store);
  let served: ServedModel | undefined;
  if (activated && (config.modelDir === AUTO || path.resolve(activated) !== path.resolve(config.modelDir))) {
    logger.info({ model: activated }, 'serving the model activated at run time (POST /models/{fingerprint}/activate) instead of QEMBED_MODEL_DIR');
    served = { dir: activated, chosenBy: 'activation' };
  } else if (recorded && !activated) {
    logger.warn({ missing: recorded }, 'the model activated at run time is gone; serving QEMBED_MODEL_DIR');
  }
  served ??= await resolveForConfig(config, createEncoder, {
    boundFingerprints: () => new Set(store.listCollections().map((c) => c.fingerprint)),
    log: (message, fields) => logger.info(fields ?? {}, message),
  });
  const bundle = await loadBundle(served.dir);
  served.fingerprint = bundle.fingerprint;
  const encoder = await createEncoder(bundle, config);
  if (encoder.warning) logger.warn(encoder.warning);
  logger.info({ model: bundle.manifest.name, fingerprint: bundle.fingerprint, dimension: bundle.dimension, provider: encoder.provider }, 'model loaded');

  const registry = createModelRegistry({ modelsDir: config.modelsDir, initial: encoder, createEncoder: (b) => createEncoder(b, config) });
  const search = createSearchService({ store, firstStage, encoder: () => registry.active(), encoderFor: (fp) => registry.loaded(fp) });
  const started = performance.now();
  const indexed = search.loadIndexes();
  logger.info({ documents: indexed, ms: Math.round(performance.now() - started) }, 'search indexes loaded');
  const activation = createActivation({ registry, search, meta: store, logger });
  const resumed = await activation.resume();
  if (resumed.length > 0) logger.info({ collections: resumed }, 'resuming re-encodings interrupted by a restart');
  // Several API processes on one PostgreSQL database: follow activations made by the others.
  let following = false;
  const follower = config.databaseUrl
    ? setInterval(() => {
        if (following) return;
        following = true;
        activation
          .follow()
          .catch((e: unknown) => logger.warn({ err: e }, 'could not follow the model activated by another API process'))
          .finally(() => (following = false));
      }, FOLLOW_INTERVAL_MS)
    : undefined;
  follower?.unref();

  const jobsDb = openJobsDatabase(config.dataDir);
  const jobs = createTrainJobs(jobsDb);
  const reaper = setInterval(() => {
    const failed = jobs.reapExpired();
    if (failed > 0) logger.warn({ jobs: failed }, 'training jobs failed: their worker stopped reporting');
  }, 5000);
  reaper.unref();

  const app = await buildApp({
    config,
    encoder: () => registry.active(),
    storage: store,
    search,
    logger,
    shuttingDown,
    models: { registry, activation },
    jobs: { jobs, datasetsDir: config.datasetsDir },
    served,
    metricsGauges: [
      {
        name: 'qembed_training_jobs',
        help: 'Training jobs by state.',
        labelNames: ['state'],
        collect: () => {
          const counts = jobs.countsByState();
          return JOB_STATES.map((state) => ({ labels: { state }, value: counts[state] }));
        },
      },
    ],
  });

  // Snapshots of the first stage make the next start read each collection in one go; a failure
  // only costs that (the next start builds the indexes from the rows).
  const persistIndexes = () => {
    try {
      firstStage.persist();
    } catch (e) {
      logger.warn({ err: e }, 'index snapshots were not saved; the next start reads the database');
    }
  };

  const closeDatabases = async () => {
    if (jobsDb.open) jobsDb.close();
    await closeStore();
  };

  return {
    app,
    registry,
    jobs,
    // Stop accepting and drain the requests in flight, stop background work (re-encodings
    // resume at the next start), close the model sessions, then the databases.
    async close() {
      clearInterval(reaper);
      clearInterval(follower);
      await app.close();
      await search.stopBackground();
      await registry.close();
      persistIndexes();
      await closeDatabases();
    },
    async abort() {
      clearInterval(reaper);
      clearInterval(follower);
      const stopping = search.stopBackground();
      await registry.close();
      await stopping;
      await closeDatabases();
    },
  };
}
