/**
 * How the service serves the web console (the browser tests in test/console/ use it): / sends a
 * browser there and leaves API clients their 404, the files load without the API key (they hold
 * no data) while the API still needs it, the hashed bundle is cached for good and the page is
 * not, and a service without a built console says how to build it.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorHandler } from '../../src/http/error-handler.js';
import { consolePlugin } from '../../src/http/plugins/console.js';
import { consoleDir } from '../../src/paths.js';
import { startTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
beforeAll(async () => {
  const built = spawnSync(process.execPath, ['scripts/build-console.mjs'], { cwd: path.resolve(import.meta.dirname, '../..'), encoding: 'utf8' });
  if (built.status !== 0) throw new Error(built.stderr);
  t = await startTestApp({ apiKey: 'k3y' });
});
afterAll(() => t?.close());

describe('the web console', () => {
  it('sends a browser asking for / to /console/, and gives API clients the 404 of an unknown route', async () => {
    const browser = await t.app.inject({ method: 'GET', url: '/', headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
    expect(browser.statusCode).toBe(302);
    expect(browser.headers.location).toBe('/console/');
    const client = await t.app.inject({ method: 'GET', url: '/', headers: { accept: 'application/json' } });
    expect(client.statusCode).toBe(404);
    expect(client.json().error.code).toBe('QEMBED_ROUTE_NOT_FOUND');
    expect((await t.app.inject({ method: 'GET', url: '/console' })).headers.location).toBe('/console/');
  });

  it('serves its files without the API key, while the API still needs it', async () => {
    const page = await t.app.inject({ method: 'GET', url: '/console/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['cache-control']).toBe('no-cache');
    const bundle = /src="\.\/(app\.[A-Z0-9]{8}\.js)"/.exec(page.body)?.[1];
    expect(bundle).toBeDefined();
    const js = await t.app.inject({ method: 'GET', url: `/console/${bundle}` });
    expect(js.statusCode).toBe(200);
    expect(js.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(readdirSync(consoleDir)).toContain(bundle);
    expect((await t.app.inject({ method: 'GET', url: '/collections' })).statusCode).toBe(401);
    const missing = await t.app.inject({ method: 'GET', url: '/console/nope.js' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('QEMBED_ROUTE_NOT_FOUND');
  });

  it('says how to build it when dist/console is missing', async () => {
    const empty = mkdtempSync(path.join(tmpdir(), 'qembed-no-console-'));
    const app = Fastify();
    app.setErrorHandler(errorHandler);
    await consolePlugin(app, { dir: empty });
    const r = await app.inject({ method: 'GET', url: '/console/' });
    expect(r.statusCode).toBe(503);
    expect(r.json().error).toEqual({ code: 'QEMBED_CONSOLE_NOT_BUILT', message: expect.stringContaining('npm run build') });
    await app.close();
    rmSync(empty, { recursive: true, force: true });
  });
});
