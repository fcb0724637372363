/**
 * Process entry: configuration, logger, model, database, HTTP listener and graceful close.
 * Anything wrong at start (bad setting, missing or mismatched bundle, CUDA asked for but
 * absent, unreadable database) ends the process with a clear message and exit code 1.
 */
import { pino } from 'pino';
import { loadConfig } from './config.js';
import { startService } from './service.js';

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = pino({ level: config.logLevel, base: { service: 'qembed' } });

  let shuttingDown = false;
  const service = await startService(config, logger, () => shuttingDown);
  const { app } = service;
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
      await service.close();
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
