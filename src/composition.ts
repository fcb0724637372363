/**
 * The one composition root: opens the configured store (SQLite or PostgreSQL), loads the model
 * to serve and wires the registry, search, activation and training jobs. The server
 * (service.ts), the OpenAPI generator, every `qembed` command and the test harness build what
 * they need here, so that each runs the same wiring; they differ only in the options below.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { loadBundle } from './encoder/bundle.js';
import { createEncoder, type Encoder } from './encoder/encoder.js';
import { createFirstStageIndex, type FirstStageIndex } from './first-stage/first-stage.js';
import { setScanThreads } from './first-stage/scan-pool.js';
import { createFitJobs, type FitJobs } from './jobs/fit-jobs.js';
import { createTransformFits, type TransformFits } from './jobs/transform-fits.js';
import { createTrainJobs, type TrainJobs } from './jobs/train-jobs.js';
import { type Activation, activatedModelDir, ACTIVE_MODEL_KEY, createActivation } from './models/activation.js';
import { AUTO, modelDirForTools, resolveForConfig, type ServedModel } from './models/encoder-choice.js';
import { createModelRegistry, type ModelRegistry } from './models/registry.js';
import { projectRoot } from './paths.js';
import { createSearchService, type SearchService } from './search/search-service.js';
import { type Db, openDatabase } from './store/database.js';
import { describeDatabase } from './database-url.mjs';
import { openPostgresStore } from './store/postgres/postgres-store.js';
import { createSqliteStore } from './store/sqlite/sqlite-store.js';
import type { Store } from './store/store.js';

/** How often an API process on a shared database checks for a model activated by another. */
export const FOLLOW_INTERVAL_MS = 2000;
/** How often a serving process fails the training jobs and transform fits whose worker stopped reporting. */
const REAP_INTERVAL_MS = 5000;
/** How often a serving process takes the fits the worker finished. */
const FIT_POLL_INTERVAL_MS = 2000;
/** How often it looks for collections due an automatic fit (QEMBED_AUTO_FIT). */
const AUTO_FIT_INTERVAL_MS = 30_000;

/**
 * Which database: `configured` is QEMBED_DATABASE_URL's PostgreSQL, else the SQLite file in
 * QEMBED_DATA_DIR (the server, `qembed ingest`, `qembed check`); `memory` an empty SQLite
 * database in memory (the OpenAPI document, tests); `scratch` a place for temporary collections
 * (`qembed eval`): the configured PostgreSQL, else memory (the data folder is left alone).
 */
export type DatabaseChoice = 'configured' | 'memory' | 'scratch';

/**
 * Which model: `serve` what the server serves, measured when QEMBED_MODEL_DIR=auto has no
 * recorded choice (the server); `tools` what the server serves, never measured (commands); a
 * bundle folder; an encoder already made (qembed eval wraps it; the composition closes it);
 * or `none` (the OpenAPI document: routes that need a model fail).
 */
export type ModelChoice = 'serve' | 'tools' | 'none' | { dir: string } | { encoder: Encoder };

export interface ComposeOptions {
  database: DatabaseChoice;
  model: ModelChoice;
  /** The training job queue: QEMBED_DATA_DIR/jobs.sqlite, shared with worker processes, or one in memory. */
  jobs?: 'file' | 'memory';
  /**
   * A serving process: loads every index now (fails fast), resumes re-encodings a restart
   * interrupted, follows activations made by other processes on PostgreSQL, and fails training
   * jobs whose worker stopped reporting.
   */
  serving?: boolean;
  logger?: Logger;
}

export interface Composition {
  config: Config;
  /** The storage; its writes reach the first stage through `search` (first-stage/in-step.ts). */
  store: Store;
  /** The first stage over the store's codes (in memory, or in SQL for PostgreSQL's exact/hnsw). */
  firstStage: FirstStageIndex;
  /** The SQLite database under `store`, when the store is SQLite (tests look at its rows). */
  sqlite?: Db;
  search: SearchService;
  /** Absent with `model: 'none'`. */
  models?: { registry: ModelRegistry; activation: Activation };
  jobs?: TrainJobs;
  /** The transform fit queue, in the same jobs database as `jobs`. */
  fitJobs?: FitJobs;
  /** Fits of collections' transforms through that queue: requests, results taken, automatic fits. */
  fits?: TransformFits;
  /** How the model served at start was chosen (GET /health reports it). */
  served?: ServedModel;
  /** The encoder serving now (a getter: activation changes it); throws with `model: 'none'`. */
  encoder(): Encoder;
  /** Stops background work (re-encodings resume at the next start), closes the model sessions, saves the first stage's snapshots, closes the databases. */
  close(): Promise<void>;
  /** The same without waiting for background work to stop cleanly, and without snapshots (a shutdown past its deadline). */
  abort(): Promise<void>;
}

interface OpenedStore {
  store: Store;
  sqlite?: Db;
  close(): Promise<void>;
}

function openStore(config: Config, choice: DatabaseChoice, logger: Logger | undefined): OpenedStore {
  if (config.databaseUrl && choice !== 'memory') {
    const store = openPostgresStore(config.databaseUrl, { firstStage: config.pgFirstStage });
    logger?.info({ database: describeDatabase(config.databaseUrl) }, 'database open (PostgreSQL)');
    return { store, close: () => store.close() };
  }
  const file = choice === 'configured' ? path.join(config.dataDir, 'qembed.sqlite') : ':memory:';
  const db = openDatabase({ file });
  if (choice === 'configured') logger?.info({ database: path.resolve(file) }, 'database open');
  return {
    store: createSqliteStore(db),
    sqlite: db,
    close: async () => {
      if (db.open) db.close();
    },
  };
}

/** The jobs database is shared with worker processes, so unlike the main one it is not locked. */
function openJobsDatabase(config: Config, where: 'file' | 'memory'): Db {
  const migrationsDir = path.join(projectRoot, 'migrations', 'jobs');
  return openDatabase(where === 'memory' ? { file: ':memory:', migrationsDir } : { file: path.join(config.dataDir, 'jobs.sqlite'), exclusive: false, migrationsDir });
}

/** The model a choice names: its folder and how it was chosen (the model activated at run time first). */
async function resolveModel(config: Config, choice: 'serve' | 'tools' | { dir: string }, store: Store, logger: Logger | undefined): Promise<ServedModel> {
  if (typeof choice === 'object') return { dir: choice.dir, chosenBy: 'configuration' };
  const recorded = store.getMeta(ACTIVE_MODEL_KEY);
  const activated = activatedModelDir(store);
  if (activated && (config.modelDir === AUTO || path.resolve(activated) !== path.resolve(config.modelDir))) {
    logger?.info({ model: activated }, 'serving the model activated at run time (POST /models/{fingerprint}/activate) instead of QEMBED_MODEL_DIR');
    return { dir: activated, chosenBy: 'activation' };
  }
  if (recorded && !activated) logger?.warn({ missing: recorded }, 'the model activated at run time is gone; serving QEMBED_MODEL_DIR');
  if (choice === 'tools') return { dir: modelDirForTools(config), chosenBy: 'configuration' };
  return resolveForConfig(config, createEncoder, {
    boundFingerprints: () => new Set(store.listCollections().map((c) => c.fingerprint)),
    log: (message, fields) => logger?.info(fields ?? {}, message),
  });
}

const noModel = (): never => {
  throw new Error('this process runs without a model');
};

/** The served model's encoder for a choice, and how it was chosen (none for `none` or a given encoder). */
async function loadModel(config: Config, choice: ModelChoice, store: Store, logger: Logger | undefined): Promise<{ encoder?: Encoder; served?: ServedModel }> {
  if (choice === 'none') return {};
  if (typeof choice === 'object' && 'encoder' in choice) return { encoder: choice.encoder };
  const served = await resolveModel(config, choice, store, logger);
  const bundle = await loadBundle(served.dir);
  served.fingerprint = bundle.fingerprint;
  const encoder = await createEncoder(bundle, config);
  if (encoder.warning) logger?.warn(encoder.warning);
  logger?.info({ model: bundle.manifest.name, fingerprint: bundle.fingerprint, dimension: bundle.dimension, provider: encoder.provider }, 'model loaded');
  return { encoder, served };
}

export async function compose(config: Config, options: ComposeOptions): Promise<Composition> {
  const { logger } = options;
  setScanThreads(config.searchThreads);
  const opened = openStore(config, options.database, logger);
  const { store } = opened;
  let model: Awaited<ReturnType<typeof loadModel>> | undefined;
  let jobsDb: Db | undefined;
  try {
    model = await loadModel(config, options.model, store, logger);
    if (options.jobs) jobsDb = openJobsDatabase(config, options.jobs);
  } catch (e) {
    await model?.encoder?.close();
    await opened.close();
    throw e;
  }
  const { encoder: initial, served } = model;
  const registry = initial && createModelRegistry({ modelsDir: config.modelsDir, initial, createEncoder: (b) => createEncoder(b, config) });
  const encoder = registry ? () => registry.active() : noModel;
  const firstStage = createFirstStageIndex(store);
  const search = createSearchService({
    store,
    firstStage,
    encoder,
    encoderFor: (fp) => registry?.loaded(fp),
    quality: { sampleSize: config.qualitySample, cpuShare: config.qualityCpuPercent / 100, idleCpuShare: config.qualityIdleCpuPercent / 100 },
    exactMaxDocuments: config.exactMaxDocuments,
    onBackgroundError: (e, collection) => logger?.warn({ err: e, collection }, 'measuring recall failed; it is tried again later'),
  });
  const activation = registry && createActivation({ registry, search, meta: store, logger });
  const jobs = jobsDb && createTrainJobs(jobsDb);
  const fitJobs = jobsDb && createFitJobs(jobsDb);
  const fits =
    fitJobs &&
    createTransformFits({
      search,
      fitJobs,
      meta: store,
      options: config,
      onEvent: (e) =>
        e.error
          ? logger?.warn({ err: e.error, collection: e.collection, job: e.job }, 'a transform fit could not be applied')
          : logger?.info({ collection: e.collection, job: e.job, transform: e.fingerprint, outcome: e.outcome }, 'transform fit applied'),
    });
  const closeDatabases = async () => {
    if (jobsDb?.open) jobsDb.close();
    await opened.close();
  };
  const timers: NodeJS.Timeout[] = [];
  const stopTimers = () => timers.forEach(clearInterval);
  // Without waiting for background work to stop cleanly, and without snapshots: a shutdown past its deadline, or a start that failed.
  const abort = async () => {
    stopTimers();
    const stopping = search.stopBackground();
    await registry?.close();
    await stopping;
    await closeDatabases();
  };

  if (options.serving) {
    try {
      const started = performance.now();
      const indexed = search.loadIndexes();
      logger?.info({ documents: indexed, ms: Math.round(performance.now() - started) }, 'search indexes loaded');
      const resumed = (await activation?.resume()) ?? [];
      if (resumed.length > 0) logger?.info({ collections: resumed }, 'resuming re-encodings interrupted by a restart');
      const switching = search.resumeSwitches((collection, outcome) =>
        outcome instanceof Error
          ? logger?.warn({ err: outcome, collection }, 'a transform switch interrupted by a restart failed')
          : logger?.info({ collection, outcome }, 'transform switch ended'),
      );
      if (switching.length > 0) logger?.info({ collections: switching }, 'resuming transform switches interrupted by a restart');
      if (registry) search.startBackground();
    } catch (e) {
      await abort();
      throw e;
    }
    // Several API processes on one PostgreSQL database: follow activations made by the others.
    if (config.databaseUrl && activation) {
      timers.push(every(FOLLOW_INTERVAL_MS, () => activation.follow(), (e) => logger?.warn({ err: e }, 'could not follow the model activated by another API process')));
    }
    if (jobs && fitJobs) {
      timers.push(
        every(REAP_INTERVAL_MS, async () => {
          const failed = jobs.reapExpired();
          if (failed > 0) logger?.warn({ jobs: failed }, 'training jobs failed: their worker stopped reporting');
          const reaped = fitJobs.reapExpired();
          if (reaped > 0) logger?.warn({ jobs: reaped }, 'transform fits failed: their worker stopped reporting');
        }),
      );
    }
    if (fits) {
      const warn = (what: string) => (e: unknown) => logger?.warn({ err: e }, what);
      timers.push(every(FIT_POLL_INTERVAL_MS, () => fits.poll(), warn('could not take the finished transform fits')));
      timers.push(every(AUTO_FIT_INTERVAL_MS, () => fits.autoFit(), warn('could not ask for the automatic transform fits')));
    }
  }

  return {
    config,
    store,
    firstStage,
    ...(opened.sqlite && { sqlite: opened.sqlite }),
    search,
    ...(registry && activation && { models: { registry, activation } }),
    ...(jobs && { jobs }),
    ...(fitJobs && { fitJobs }),
    ...(fits && { fits }),
    ...(served && { served }),
    encoder,
    async close() {
      stopTimers();
      await search.stopBackground();
      await registry?.close();
      // Snapshots of the first stage make the next start read each collection in one go; a
      // failure only costs that (the next start builds the indexes from the rows).
      try {
        firstStage.persist();
      } catch (e) {
        logger?.warn({ err: e }, 'index snapshots were not saved; the next start reads the database');
      }
      await closeDatabases();
    },
    abort,
  };
}

/** Runs `task` every `ms`, one run at a time; a failure is reported and the next run goes on. */
function every(ms: number, task: () => Promise<unknown>, onError: (e: unknown) => void = () => {}): NodeJS.Timeout {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    task()
      .catch(onError)
      .finally(() => (running = false));
  }, ms);
  timer.unref();
  return timer;
}
