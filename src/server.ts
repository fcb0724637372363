/**
 * Process entry: configuration, logger, model, database, HTTP listener and graceful close.
 * Anything wrong at start (bad setting, missing or mismatched bundle, CUDA asked for but
 * absent, unreadable database) ends the process with a clear message and exit code 1.
 */
import path from 'node:path';
import { pino } from 'pino';
import { buildApp } from './app.js';
import { loadConfig } from './config.js';
import { loadBundle } from './encoder/bundle.js';
import { createEncoder } from './encoder/encoder.js';
import { createSearchService } from './search/search-service.js';
import { openDatabase } from './store/database.js';
import { createStore } from './store/store.js';

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = pino({ level: config.logLevel, base: { service: 'qembed' } });

  const bundle = await loadBundle(config.modelDir);
  const encoder = await createEncoder(bundle, config);
  if (encoder.warning) logger.warn(encoder.warning);
  logger.info(
    { model: bundle.manifest.name, fingerprint: bundle.fingerprint, dimension: bundle.dimension, provider: encoder.provider },
    'model loaded',
  );
  const dbFile = path.join(config.dataDir, 'qembed.sqlite');
  const db = openDatabase({ file: dbFile });
  logger.info({ database: path.resolve(dbFile) }, 'database open');
  const search = createSearchService({ store: createStore(db), encoder: () => encoder });
  const started = performance.now();
  const indexed = search.loadIndexes();
  logger.info({ documents: indexed, ms: Math.round(performance.now() - started) }, 'search indexes loaded');

  let shuttingDown = false;
  const app = await buildApp({ config, encoder: () => encoder, db, search, logger, shuttingDown: () => shuttingDown });
  await app.listen({ host: config.host, port: config.port });

  const close = async (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    logger.info({ signal }, 'shutting down: draining in-flight requests');
    const timer = setTimeout(() => {
      logger.error({ timeoutMs: config.shutdownTimeoutMs }, 'in-flight requests did not finish in time; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    timer.unref();
    try {
      await app.close();
      await encoder.close();
      db.close();
      logger.info('closed');
      process.exit(0);
    } catch (e) {
      logger.error({ err: e }, 'error while shutting down');
      process.exit(1);
    }
  };
  process.once('SIGTERM', () => void close('SIGTERM'));
  process.once('SIGINT', () => void close('SIGINT'));
}

main().catch((e: Error) => {
  process.stderr.write(`qembed: cannot start: ${e.message}\n`);
  process.exit(1);
});
