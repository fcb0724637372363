/**
 * The service's configuration: one schema that yields validation, types, defaults and the
 * README's config table. This is the only module that reads `process.env`.
 */
import { clientConfig } from './database-url.mjs';

type Kind = 'string' | 'secret' | 'integer' | 'boolean' | 'enum' | 'path';

interface Setting<K extends Kind, T> {
  env: `QEMBED_${string}`;
  kind: K;
  default: T;
  description: string;
  values?: readonly string[];
  min?: number;
  max?: number;
  optional?: boolean;
}

const setting = <K extends Kind, T>(s: Setting<K, T>): Setting<K, T> => s;

/** Every setting, in the order the README lists them. */
export const configSchema = {
  host: setting({ env: 'QEMBED_HOST', kind: 'string', default: '0.0.0.0', description: 'Address the HTTP server listens on.' }),
  port: setting({ env: 'QEMBED_PORT', kind: 'integer', default: 8080, min: 0, max: 65535, description: 'TCP port of the HTTP server (0 picks a free port).' }),
  dataDir: setting({ env: 'QEMBED_DATA_DIR', kind: 'path', default: './data', description: 'Folder for the SQLite database and other state; created if missing.' }),
  modelDir: setting({ env: 'QEMBED_MODEL_DIR', kind: 'path', default: 'auto', description: 'Model bundle served at start (see docs/model-bundle.md), or `auto`: the fastest of QEMBED_ENCODER_CANDIDATES on this machine among those whose embeddings agree with the float32 encoder, measured at the first start and recorded in QEMBED_MODELS_DIR/encoder-choice.json.' }),
  encoderCandidates: setting({ env: 'QEMBED_ENCODER_CANDIDATES', kind: 'string', default: './models/default,./models/default-int8', description: 'With QEMBED_MODEL_DIR=auto: the bundle folders to choose from (comma-separated; missing ones are skipped).' }),
  modelsDir: setting({ env: 'QEMBED_MODELS_DIR', kind: 'path', default: './models', description: 'Folder holding the model bundles that can be listed and activated.' }),
  datasetsDir: setting({ env: 'QEMBED_DATASETS_DIR', kind: 'path', default: './datasets', description: 'Root folder that training jobs may read datasets from (POST /train-jobs takes paths inside it).' }),
  executionProvider: setting({ env: 'QEMBED_EXECUTION_PROVIDER', kind: 'enum', values: ['cpu', 'cuda'] as const, default: 'cpu' as 'cpu' | 'cuda', description: 'onnxruntime execution provider: `cpu`, or `cuda` (needs the CUDA provider libraries: scripts/install-cuda-providers installs them from PyPI; docs/deploy.md).' }),
  cudaFallback: setting({ env: 'QEMBED_CUDA_FALLBACK', kind: 'boolean', default: false, description: 'With `cuda`, fall back to the CPU instead of refusing to start when CUDA is unavailable.' }),
  cudaDeviceId: setting({ env: 'QEMBED_CUDA_DEVICE_ID', kind: 'integer', default: 0, min: 0, max: 64, description: 'GPU used by the CUDA execution provider.' }),
  intraOpThreads: setting({ env: 'QEMBED_INTRA_OP_THREADS', kind: 'integer', default: 0, min: 0, max: 1024, description: 'Threads onnxruntime uses inside one inference (0: one per CPU available to the process, set explicitly so that onnxruntime does not pin its threads to cores).' }),
  searchThreads: setting({ env: 'QEMBED_SEARCH_THREADS', kind: 'integer', default: 0, min: 0, max: 256, description: 'Threads the first stage of one search is split over when a collection has at least 131,072 documents per thread (0: one per CPU available to the process; 1: never split). Results are the same whatever the number.' }),
  maxInputs: setting({ env: 'QEMBED_MAX_INPUTS', kind: 'integer', default: 256, min: 1, max: 100_000, description: 'Most texts accepted in one request.' }),
  maxInputChars: setting({ env: 'QEMBED_MAX_INPUT_CHARS', kind: 'integer', default: 100_000, min: 1, max: 10_000_000, description: 'Longest text accepted, in characters (longer texts get 413 before tokenization).' }),
  bodyLimitBytes: setting({ env: 'QEMBED_BODY_LIMIT_BYTES', kind: 'integer', default: 8 * 1024 * 1024, min: 1024, max: 1024 * 1024 * 1024, description: 'Largest request body accepted, in bytes.' }),
  maxBatchTokens: setting({ env: 'QEMBED_MAX_BATCH_TOKENS', kind: 'integer', default: 8192, min: 1, max: 10_000_000, description: 'Token budget of one model batch (padded length × texts), as in text-embeddings-inference.' }),
  maxBatchSize: setting({ env: 'QEMBED_MAX_BATCH_SIZE', kind: 'integer', default: 32, min: 1, max: 4096, description: 'Most texts in one model batch.' }),
  queueSize: setting({ env: 'QEMBED_QUEUE_SIZE', kind: 'integer', default: 2048, min: 1, max: 10_000_000, description: 'Most texts waiting for the model; beyond it requests get 429 with Retry-After.' }),
  databaseUrl: setting({ env: 'QEMBED_DATABASE_URL', kind: 'secret', default: '', description: 'A PostgreSQL database (with pgvector; any libpq connection string: `postgres://user:password@host:port/db`, a socket folder as `postgresql://user@/db?host=/run/postgresql`, or `host=... dbname=...`) shared by several API processes instead of the SQLite file in QEMBED_DATA_DIR (docs/scale-out.md). Training jobs stay in QEMBED_DATA_DIR.' }),
  pgFirstStage: setting({ env: 'QEMBED_PG_FIRST_STAGE', kind: 'enum', values: ['memory', 'exact', 'hnsw'] as const, default: 'memory' as 'memory' | 'exact' | 'hnsw', description: 'With QEMBED_DATABASE_URL: where the Hamming first stage runs: `memory` (an index in each API process, kept in step through the database), `exact` (PostgreSQL sorts by `<~>`) or `hnsw` (pgvector HNSW, approximate). docs/scale-out.md has the measurements.' }),
  qualitySample: setting({ env: 'QEMBED_QUALITY_SAMPLE', kind: 'integer', default: 512, min: 0, max: 100_000, description: "Query vectors kept per collection to measure its recall (a uniform sample of the float32 vectors of the queries served, never their texts; persisted with the measurements in the database); 0 turns the measurement off, and `rescore_multiplier: \"auto\"` then uses 4 (docs/search.md, recall measured per collection)." }),
  qualityCpuPercent: setting({ env: 'QEMBED_QUALITY_CPU_PERCENT', kind: 'integer', default: 1, min: 1, max: 100, description: "Share of one core, in percent, the background recall measurement may take while searches are being served: after each slice of work (one page of a collection's int8 codes) it waits long enough to stay under it." }),
  qualityIdleCpuPercent: setting({ env: 'QEMBED_QUALITY_IDLE_CPU_PERCENT', kind: 'integer', default: 25, min: 1, max: 100, description: 'Share of one core, in percent, the background recall measurement may take when no search has been served for a quarter of a second (an idle service measures quickly; a loaded one barely notices it).' }),
  autoFit: setting({ env: 'QEMBED_AUTO_FIT', kind: 'boolean', default: true, description: "Fit a first-stage transform for each collection on its own documents when it reaches QEMBED_AUTO_FIT_DOCUMENTS, and again when it has grown by QEMBED_AUTO_FIT_GROWTH_PERCENT since its last fit; the fit is queued for the worker (`python -m qembed_worker work`) and its transform served only if it measures better than the served codes (docs/compact-codes.md). `false`: fits only when asked (POST /collections/{name}/fit)." }),
  autoFitDocuments: setting({ env: 'QEMBED_AUTO_FIT_DOCUMENTS', kind: 'integer', default: 5000, min: 1000, max: 1_000_000_000, description: 'Documents from which a collection gets its first automatic fit (QEMBED_AUTO_FIT).' }),
  autoFitGrowthPercent: setting({ env: 'QEMBED_AUTO_FIT_GROWTH_PERCENT', kind: 'integer', default: 100, min: 10, max: 100_000, description: 'A collection is fitted again automatically once it has grown by this many percent since its last fit (100: doubled).' }),
  fitMaxDocuments: setting({ env: 'QEMBED_FIT_MAX_DOCUMENTS', kind: 'integer', default: 100_000, min: 1000, max: 10_000_000, description: "Most documents' int8 codes a fit is trained on (a sample spread over the collection; 100,000 fit in about 3.5 minutes on one core)." }),
  fitMethod: setting({ env: 'QEMBED_FIT_METHOD', kind: 'enum', values: ['qat', 'itq'] as const, default: 'qat' as 'qat' | 'itq', description: 'How automatic fits are made: `qat` (quantization-aware training started from ITQ, which it keeps where it does not beat it) or `itq` (the post-training baseline).' }),
  exactMaxDocuments: setting({ env: 'QEMBED_EXACT_MAX_DOCUMENTS', kind: 'integer', default: 200_000, min: 1, max: 1_000_000_000, description: 'Most documents a search with `rescore: \"exact\"` ranks (every one by its int8 code, in one pass that holds the event loop); above it the search answers 400 QEMBED_EXACT_SEARCH_TOO_LARGE.' }),
  apiKey: setting({ env: 'QEMBED_API_KEY', kind: 'secret', default: '', description: 'When set, every route but /health needs `Authorization: Bearer <key>`.' }),
  requestTimeoutMs: setting({ env: 'QEMBED_REQUEST_TIMEOUT_MS', kind: 'integer', default: 30_000, min: 1000, max: 3_600_000, description: 'Longest time a client may take to send a whole request (headers and body); a stalled upload is cut with 408. Processing time is not limited.' }),
  headersTimeoutMs: setting({ env: 'QEMBED_HEADERS_TIMEOUT_MS', kind: 'integer', default: 10_000, min: 1000, max: 3_600_000, description: 'Longest time a client may take to send the request headers.' }),
  keepAliveTimeoutMs: setting({ env: 'QEMBED_KEEP_ALIVE_TIMEOUT_MS', kind: 'integer', default: 5_000, min: 100, max: 3_600_000, description: 'How long an idle keep-alive connection stays open.' }),
  shutdownTimeoutMs: setting({ env: 'QEMBED_SHUTDOWN_TIMEOUT_MS', kind: 'integer', default: 30_000, min: 0, max: 3_600_000, description: 'On SIGTERM, how long in-flight requests may take to finish before the process exits anyway.' }),
  logLevel: setting({ env: 'QEMBED_LOG_LEVEL', kind: 'enum', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, default: 'info' as 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent', description: 'pino log level.' }),
} as const;

type Schema = typeof configSchema;
export type Config = { -readonly [K in keyof Schema]: Schema[K]['default'] };

/** A configuration problem found at start: names the variable and what is wrong with it. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

function parseValue(key: string, s: Setting<Kind, unknown>, raw: string): unknown {
  const bad = (why: string) => new ConfigError(`${s.env}=${JSON.stringify(raw)} is invalid: ${why}`);
  switch (s.kind) {
    case 'secret':
      return raw;
    case 'string':
    case 'path':
      if (raw.trim() === '') throw bad('must not be empty');
      return raw;
    case 'integer': {
      if (!/^-?\d+$/.test(raw.trim())) throw bad('expected an integer');
      const n = Number(raw);
      if (s.min !== undefined && n < s.min) throw bad(`must be ≥ ${s.min}`);
      if (s.max !== undefined && n > s.max) throw bad(`must be ≤ ${s.max}`);
      return n;
    }
    case 'boolean': {
      const v = raw.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(v)) return true;
      if (['0', 'false', 'no', 'off'].includes(v)) return false;
      throw bad('expected true or false');
    }
    case 'enum':
      if (!s.values?.includes(raw)) throw bad(`expected one of ${s.values?.join(', ')}`);
      return raw;
    default:
      throw new ConfigError(`unknown kind for ${key}`);
  }
}

/**
 * Reads the configuration from environment variables (defaults for the missing ones),
 * then applies `overrides` (used by tests and CLIs). Throws ConfigError naming the variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv, overrides: Partial<Config> = {}): Config {
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(configSchema) as [string, Setting<Kind, unknown>][]) {
    const raw = env[s.env];
    out[key] = raw === undefined ? s.default : parseValue(key, s, raw);
  }
  const known = new Set(Object.values(configSchema).map((s) => s.env));
  const unknown = Object.keys(env).filter((k) => k.startsWith('QEMBED_') && !known.has(k as never) && !IGNORED_ENV.has(k) && !(k in DEPRECATED_ENV));
  if (unknown.length > 0) {
    throw new ConfigError(`unknown setting(s) ${unknown.join(', ')}; known: ${[...known].join(', ')}`);
  }
  const config = { ...(out as Config), ...overrides };
  if (config.headersTimeoutMs > config.requestTimeoutMs) {
    throw new ConfigError(`QEMBED_HEADERS_TIMEOUT_MS (${config.headersTimeoutMs}) must not exceed QEMBED_REQUEST_TIMEOUT_MS (${config.requestTimeoutMs})`);
  }
  if (config.databaseUrl) {
    try {
      clientConfig(config.databaseUrl);
    } catch (e) {
      throw new ConfigError(`QEMBED_DATABASE_URL must be a PostgreSQL URL: ${(e as Error).message}`);
    }
  }
  if (config.queueSize < config.maxInputs) {
    throw new ConfigError(`QEMBED_QUEUE_SIZE (${config.queueSize}) must be at least QEMBED_MAX_INPUTS (${config.maxInputs}), or full-size requests could never run`);
  }
  return config;
}

/**
 * Settings that no longer exist: accepted so that old deployments still start, with a warning
 * (server.ts) saying what replaced them.
 */
export const DEPRECATED_ENV: Record<string, string> = {
  QEMBED_JOB_LEASE_SECONDS:
    "QEMBED_JOB_LEASE_SECONDS is ignored: it was never applied; a training job's lease is the worker's (python -m qembed_worker work --lease-seconds)",
};

/** Variables read by scripts and tests rather than by the service. */
/** What to warn about the deprecated settings this process's environment sets. */
export function deprecationWarnings(env: NodeJS.ProcessEnv = process.env): string[] {
  return Object.entries(DEPRECATED_ENV).flatMap(([name, why]) => (env[name] !== undefined ? [why] : []));
}

/** This process's configuration: its environment, with `overrides` (command-line options) on top. */
export const processConfig = (overrides: Partial<Config> = {}): Config => loadConfig(process.env, overrides);

const IGNORED_ENV = new Set([
  'QEMBED_WORKER_VENV',
  'QEMBED_PYTHON',
  'QEMBED_SKIP_SETUP',
  // The worker's own (a container may share the API's environment): its caches, where it finds contracts/, the emulated-CPU tests' budget.
  'QEMBED_EMBEDDING_CACHE',
  'QEMBED_CORPUS_CACHE',
  'QEMBED_CONTRACTS_DIR',
  'QEMBED_OTHER_CPU_BUDGET',
  // The recall corpus's (bench/recall/corpus.ts): its cache root and the BEIR collections it reads.
  'QEMBED_RECALL_CACHE',
  'QEMBED_RECALL_DATASETS',
]);

/** The README's configuration table, generated from the schema. */
export function configTableMarkdown(): string {
  const rows = Object.values(configSchema).map((s: Setting<Kind, unknown>) => {
    const values = s.kind === 'enum' ? ` (${s.values?.map((v) => `\`${v}\``).join(', ')})` : '';
    const shown = s.default === '' ? '(empty)' : `\`${String(s.default)}\``;
    return `| \`${s.env}\` | ${shown} | ${s.description}${values} |`;
  });
  return ['| variable | default | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}
