/**
 * Process entry: configuration, logger, model, database, HTTP listener and graceful close.
 * Anything wrong at start (bad setting, missing or mismatched bundle, CUDA asked for but
 * absent, unreadable database) ends the process with a clear message and exit code 1.
 *
 * On SIGTERM or SIGINT: stop accepting connections, drain the requests in flight, stop
 * background work (re-encodings resume at the next start), close the model sessions (each
 * finishes its batch in flight first), close the databases, exit 0. When draining takes longer
 * than QEMBED_SHUTDOWN_TIMEOUT_MS: texts still waiting for the model get 503, the batches in
 * flight finish, the same closing follows, exit 1.
 */
import { pino } from 'pino';
import { deprecationWarnings, processConfig } from './config.js';
import { startService } from './service.js';

async function main(): Promise<void> {
  const config = processConfig();
  const logger = pino({ level: config.logLevel, base: { service: 'qembed' } });
  for (const warning of deprecationWarnings()) logger.warn(warning);

  let shuttingDown = false;
  const service = await startService(config, logger, () => shuttingDown);
  const { app } = service;
  await app.listen({ host: config.host, port: config.port });

  const close = async (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    logger.info({ signal }, 'shutting down: draining in-flight requests');
    // Past the timeout: refuse what still waits for the model, let the batch in flight finish
    // (a native inference must not be cut: that aborts the process), close, exit 1.
    const timer = setTimeout(() => {
      logger.error({ timeoutMs: config.shutdownTimeoutMs }, 'in-flight requests did not finish in time; stopping the model and exiting');
      const last = setTimeout(() => process.exit(1), 30_000);
      last.unref();
      service.abort().then(
        () => process.exit(1),
        (e: unknown) => {
          logger.error({ err: e }, 'error while stopping');
          process.exit(1);
        },
      );
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
