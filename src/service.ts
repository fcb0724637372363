/**
 * The HTTP service over the composition root (composition.ts): the parts it wires, the app
 * built from them (app.ts), and the order they close in. server.ts adds the process concerns
 * (signals, exit codes); the OpenAPI document and the test harness are built here too, so that
 * each is the running service's own wiring.
 */
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import { compose, type ComposeOptions, type Composition } from './composition.js';
import { type Config, loadConfig } from './config.js';
import { JOB_STATES } from './jobs/train-jobs.js';
import { projectRoot } from './paths.js';

export const openapiFile = path.join(projectRoot, 'openapi', 'openapi.json');

export interface Service {
  app: FastifyInstance;
  parts: Composition;
  /** Graceful: stop accepting, drain the requests in flight, then close everything. */
  close(): Promise<void>;
  /**
   * When draining takes too long: texts still waiting for the model are refused (503), the
   * batch in flight finishes, then the sessions and the databases close.
   */
  abort(): Promise<void>;
}

/** The app over composed parts: every route wired to them, the training jobs' gauge on /metrics. */
async function appOver(parts: Composition, logger: Logger | false, shuttingDown?: () => boolean): Promise<FastifyInstance> {
  const { jobs } = parts;
  return buildApp({
    config: parts.config,
    encoder: parts.encoder,
    storage: parts.store,
    search: parts.search,
    logger,
    ...(shuttingDown && { shuttingDown }),
    ...(parts.models && { models: parts.models }),
    ...(jobs && { jobs: { jobs, datasetsDir: parts.config.datasetsDir } }),
    ...(parts.fits && { fits: parts.fits }),
    ...(parts.served && { served: parts.served }),
    metricsGauges: jobs
      ? [
          {
            name: 'qembed_training_jobs',
            help: 'Training jobs by state.',
            labelNames: ['state'],
            collect: () => {
              const counts = jobs.countsByState();
              return JOB_STATES.map((state) => ({ labels: { state }, value: counts[state] }));
            },
          },
        ]
      : [],
  });
}

/** Composes the parts as `options` say and builds the app over them; closing closes both, the app first. */
export async function buildService(config: Config, options: ComposeOptions & { shuttingDown?: () => boolean }): Promise<Service> {
  const parts = await compose(config, options);
  let app: FastifyInstance;
  try {
    app = await appOver(parts, options.logger ?? false, options.shuttingDown);
  } catch (e) {
    await parts.close();
    throw e;
  }
  return {
    app,
    parts,
    // Stop accepting and drain the requests in flight, then the parts (background work stops,
    // re-encodings resume at the next start; model sessions, then the databases).
    async close() {
      await app.close();
      await parts.close();
    },
    abort: () => parts.abort(),
  };
}

/** The running service: the configured database and model, background work on. */
export function startService(config: Config, logger: Logger, shuttingDown: () => boolean): Promise<Service> {
  return buildService(config, { database: 'configured', model: 'serve', jobs: 'file', serving: true, logger, shuttingDown });
}

/**
 * The OpenAPI document, produced by @fastify/swagger from the route schemas (the single source)
 * of the service composed over an empty database and no model. `npm run openapi` writes
 * openapi/openapi.json; a test fails when the committed file differs from it.
 */
export async function generateOpenApi(): Promise<string> {
  const service = await buildService(loadConfig({}), { database: 'memory', model: 'none', jobs: 'memory' });
  try {
    await service.app.ready();
    return `${JSON.stringify(service.app.swagger(), null, 2)}\n`;
  } finally {
    await service.close();
  }
}
