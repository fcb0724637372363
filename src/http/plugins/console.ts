/**
 * The web console at /console/: static files built by `npm run build` (console/ → dist/console/),
 * served by @fastify/static. The console has no routes of its own: it calls the public API with
 * the key the user types. A browser asking for / is sent to the console; API clients asking for
 * / get the 404 they always got. None of these routes is in the OpenAPI document.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { errors } from '../../errors.js';

export const CONSOLE_PREFIX = '/console/';

/** Whether a request may load without the API key: the console's own files (they hold no data). */
export function isConsoleAsset(path: string): boolean {
  return path === '/' || path === '/console' || path.startsWith(CONSOLE_PREFIX);
}

const wantsHtml = (accept: string | undefined) => (accept ?? '').split(',').some((t) => t.trim().startsWith('text/html'));

export async function consolePlugin(app: FastifyInstance, opts: { dir: string }): Promise<void> {
  const hidden = { schema: { hide: true } };
  if (existsSync(path.join(opts.dir, 'index.html'))) {
    await app.register(fastifyStatic, {
      root: opts.dir,
      prefix: CONSOLE_PREFIX,
      decorateReply: false,
      schemaHide: true,
      // index.html names its bundle by content hash: the bundle may be cached for good, the page not.
      setHeaders: (reply, file) => void reply.header('cache-control', /\.[A-Z0-9]{8}\.(js|css)$/.test(file) ? 'public, max-age=31536000, immutable' : 'no-cache'),
      cacheControl: false,
    });
  } else {
    app.get(`${CONSOLE_PREFIX}*`, hidden, async () => {
      throw errors.consoleNotBuilt('the web console is not built here: run `npm run build` (it writes dist/console/)');
    });
  }
  app.get('/console', hidden, async (_request, reply) => reply.redirect(CONSOLE_PREFIX));
  app.get('/', hidden, async (request, reply) => {
    if (wantsHtml(request.headers.accept)) return reply.redirect(CONSOLE_PREFIX);
    throw errors.routeNotFound(`no route ${request.method} /: the API's routes are listed at /docs, the console is at ${CONSOLE_PREFIX}`);
  });
}
