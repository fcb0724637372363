/**
 * The web console in a real browser (Debian's chromium, driven by puppeteer-core) against the real
 * service as a child process on a port of its own, with the SQLite store and with PostgreSQL:
 * every page loads with no console error and no failed request, passes axe-core with no serious
 * or critical violation and has every control reachable by Tab; a collection is created,
 * documents added and browsed with a filter, a search shows its overlap with the exact ranking,
 * encode shows the five precisions, a training job's progress updates live, API errors show
 * their code, the key prompt refuses a wrong key, and a restarted service is reconnected without
 * a reload. Screenshots of every page go to .cache/console-screenshots/ (or
 * TEST_SCREENSHOTS_DIR): written, never committed.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumPath, launchBrowser, seriousViolations, unreachableByKeyboard, watchProblems } from './browser.js';
import { workerPython } from '../helpers/dependencies.js';
import { postgresBin, postgresNotice, type PostgresServer, startPostgres } from '../helpers/postgres.js';
import { type ServerProcess, startServer } from '../helpers/server-process.js';

const root = path.resolve(import.meta.dirname, '../..');
const FIXTURE_BUNDLE = path.join(root, 'test/fixtures/tiny-bundle');
const chromium = chromiumPath('the web console tests');
const python = workerPython("the web console's job progress test");
const withPostgres = postgresNotice('the web console tests');
const shots = process.env.TEST_SCREENSHOTS_DIR || path.join(root, '.cache', 'console-screenshots');
/** The bundle the console is shown with (the README's screenshot uses the default model). */
const bundle = process.env.TEST_CONSOLE_BUNDLE || FIXTURE_BUNDLE;

const WORDS = ['river', 'mountain', 'bread', 'violin', 'comet', 'harbour', 'orchard', 'glacier', 'lantern', 'meadow', 'falcon', 'canyon'];
const documents = Array.from({ length: 24 }, (_, i) => ({
  id: `n${i + 1}`,
  text: `A note about the ${WORDS[i % 12]} and the ${WORDS[(i * 5 + 3) % 12]}, number ${i + 1}.`,
  metadata: { lang: i % 3 === 0 ? 'fr' : 'en', n: i + 1 },
}));

function ensureConsoleBuilt(): void {
  if (existsSync(path.join(root, 'dist/console/index.html'))) return;
  const r = spawnSync(process.execPath, [path.join(root, 'scripts/build-console.mjs')], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building the console failed: ${r.stderr}${r.stdout}`);
}

/** A folder with the bundle under models/ and a small dataset for a training job. */
function workspace(): { dir: string; env: Record<string, string> } {
  const dir = mkdtempSync(path.join(tmpdir(), 'qembed-console-'));
  const models = path.join(dir, 'models');
  cpSync(bundle, path.join(models, 'served'), { recursive: true });
  mkdirSync(path.join(dir, 'datasets', 'notes'), { recursive: true });
  writeFileSync(
    path.join(dir, 'datasets', 'notes', 'corpus.jsonl'),
    Array.from({ length: 300 }, (_, i) => JSON.stringify({ _id: `d${i}`, title: '', text: `${WORDS[i % 12]} ${WORDS[(i * 5) % 12]} ${WORDS[(i * 7) % 12]} passage ${i}` })).join('\n'),
  );
  return {
    dir,
    env: {
      QEMBED_MODEL_DIR: path.join(models, 'served'),
      QEMBED_MODELS_DIR: models,
      QEMBED_DATA_DIR: path.join(dir, 'data'),
      QEMBED_DATASETS_DIR: path.join(dir, 'datasets'),
      QEMBED_INTRA_OP_THREADS: '1',
      QEMBED_LOG_LEVEL: 'warn',
    },
  };
}

async function waitFor(page: Page, what: string, fn: string, timeout = 30_000): Promise<void> {
  try {
    await page.waitForFunction(fn, { timeout, polling: 100 });
  } catch (e) {
    const body = await page.evaluate(() => document.body.innerText.slice(0, 2000));
    throw new Error(`waiting for ${what}: ${(e as Error).message}\npage text:\n${body}`);
  }
}

const text = (page: Page, selector: string) => page.$eval(selector, (el) => (el as HTMLElement).innerText);

/** Opens a page of the console and checks it: no problem, axe, keyboard; then a screenshot. */
async function checkPage(page: Page, problems: string[], name: string, ready: string): Promise<void> {
  await waitFor(page, `the ${name} page`, ready);
  await new Promise((r) => setTimeout(r, 300)); // let the page's other calls land
  expect(problems, `${name}: console errors or failed requests`).toEqual([]);
  expect(await seriousViolations(page), `${name}: axe-core`).toEqual([]);
  expect(await unreachableByKeyboard(page), `${name}: not reachable by Tab`).toEqual([]);
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

/** The tour every store gets: each page, a collection made, filled, browsed, searched and deleted. */
async function tour(page: Page, base: string, store: string): Promise<void> {
  const problems = watchProblems(page);
  // A browser asking for / lands on the console.
  await page.goto(`${base}/`, { waitUntil: 'load' });
  expect(new URL(page.url()).pathname).toBe('/console/');
  await checkPage(page, problems.list, `${store}-overview`, `document.querySelector('[data-testid=model-name]')?.textContent.length > 0`);

  await page.goto(`${base}/console/#/collections`);
  await waitFor(page, 'the create form', `document.querySelector('input[name=name]') !== null`);
  await page.type('input[name=name]', 'notes');
  await page.click('form.inline-form button[type=submit]');
  await waitFor(page, 'the new collection page', `location.hash === '#/collections/notes' && document.querySelector('textarea[name=documents]') !== null`);
  await page.type('textarea[name=documents]', documents.map((d) => JSON.stringify(d)).join('\n'));
  await page.click('button::-p-text(Add documents)');
  await waitFor(page, 'the documents listed', `(document.querySelector('[data-testid=documents-total]')?.textContent ?? '').includes('of 24')`);
  expect(await page.$$eval('[data-testid=documents] tbody tr', (rows) => rows.length)).toBe(20);
  await page.click('button::-p-text(Next)');
  await waitFor(page, 'the second page', `(document.querySelector('[data-testid=documents-total]')?.textContent ?? '').startsWith('21–24 of 24')`);
  await page.type('input[name=filter]', 'lang=fr');
  await page.click('button::-p-text(Apply)');
  await waitFor(page, 'the filtered documents', `(document.querySelector('[data-testid=documents-total]')?.textContent ?? '').includes('of 8 matching')`);
  expect(await page.$$eval('[data-testid=documents] tbody tr td:nth-child(3)', (cells) => cells.every((c) => c.textContent!.includes('"lang":"fr"')))).toBe(true);
  await checkPage(page, problems.list, `${store}-collection`, `(document.querySelector('[data-testid=collection-documents]')?.textContent ?? '') === '24'`);

  await page.goto(`${base}/console/#/collections`);
  await checkPage(page, problems.list, `${store}-collections`, `(document.querySelector('[data-testid=collections]')?.textContent ?? '').includes('notes')`);

  await page.goto(`${base}/console/#/search?collection=notes`);
  await waitFor(page, 'the search form', `document.querySelector('select[name=collection]')?.value === 'notes'`);
  await page.type('input[name=query]', 'a violin in the orchard');
  await page.click('.search-form button[type=submit]');
  await waitFor(page, 'the overlap', `document.querySelector('[data-testid=overlap]') !== null`);
  const served = await page.$$eval('[data-testid=served-hits] li', (li) => li.map((l) => l.getAttribute('data-shared')));
  const exact = await page.$$eval('[data-testid=exact-hits] li', (li) => li.map((l) => l.getAttribute('data-shared')));
  expect(served.length).toBe(10);
  expect(exact.length).toBe(10);
  // The overlap line counts the hits marked as shared in both lists.
  const shared = served.filter((s) => s === 'yes').length;
  expect(exact.filter((s) => s === 'yes').length).toBe(shared);
  expect(await text(page, '[data-testid=overlap]')).toMatch(new RegExp(`^${shared} of 10`));
  expect(await text(page, '[data-testid=served-hits]')).toMatch(/first stage \d+(\.\d+)? ms/);
  await checkPage(page, problems.list, `${store}-search`, `document.querySelectorAll('[data-testid=exact-hits] li').length === 10`);

  await page.goto(`${base}/console/#/encode`);
  await waitFor(page, 'the encode form', `document.querySelector('textarea[name=texts]') !== null`);
  await page.click('button::-p-text(Encode at every precision)');
  await waitFor(page, 'five precisions', `document.querySelectorAll('[data-testid^=precision-]').length === 5`);
  for (const p of ['float32', 'int8', 'uint8', 'binary', 'ubinary']) {
    expect(await text(page, `[data-testid=precision-${p}]`)).toMatch(/\d+ bytes per vector/);
    // Three texts: a 3 × 3 similarity matrix, each text identical to itself (cosine 1, distance 0).
    const diagonal = await page.$$eval(`[data-testid=precision-${p}] .heatmap tbody tr`, (rows) => rows.map((r, i) => r.querySelectorAll('td')[i]!.textContent));
    expect(diagonal).toEqual(p.includes('binary') ? ['0', '0', '0'] : ['1.000', '1.000', '1.000']);
  }
  await checkPage(page, problems.list, `${store}-encode`, `document.querySelectorAll('[data-testid^=precision-]').length === 5`);

  await page.goto(`${base}/console/#/models`);
  await checkPage(page, problems.list, `${store}-models`, `(document.querySelector('[data-testid=models]')?.textContent ?? '').includes('served')`);

  // API errors are shown with their code and message: creating a collection that exists.
  await page.goto(`${base}/console/#/collections`);
  await waitFor(page, 'the create form', `document.querySelector('input[name=name]') !== null`);
  await page.type('input[name=name]', 'notes');
  await page.click('form.inline-form button[type=submit]');
  await waitFor(page, 'the error', `document.querySelector('.error[role=alert]') !== null`);
  expect(await text(page, '.error[role=alert]')).toMatch(/QEMBED_COLLECTION_EXISTS/);
  // The watcher saw that refused request (so its empty lists above mean something).
  expect(problems.list.some((p) => p.startsWith('HTTP 409: POST'))).toBe(true);
  problems.clear();

  // Create and delete, with a confirmation.
  await page.$eval('input[name=name]', (el) => ((el as HTMLInputElement).value = ''));
  await page.goto(`${base}/console/#/collections`);
  await page.reload();
  await waitFor(page, 'the create form', `document.querySelector('input[name=name]') !== null`);
  await page.type('input[name=name]', 'scratch');
  await page.click('form.inline-form button[type=submit]');
  await waitFor(page, 'the scratch collection', `location.hash === '#/collections/scratch' && document.querySelector('[data-testid=collection-documents]') !== null`);
  await page.click('button::-p-text(Delete scratch)');
  await waitFor(page, 'the confirmation', `document.querySelector('dialog[open]') !== null`);
  await page.click('dialog[open] button[value=yes]');
  await waitFor(page, 'the collections page', `location.hash === '#/collections' && (document.querySelector('[data-testid=collections]')?.textContent ?? '').includes('notes')`);
  expect(await text(page, '[data-testid=collections]')).not.toContain('scratch');
  expect(problems.list).toEqual([]);
}

describe.runIf(chromium)('the web console in Chromium', () => {
  let browser: Browser;
  const cleanup: (() => void | Promise<unknown>)[] = [];
  beforeAll(async () => {
    ensureConsoleBuilt();
    mkdirSync(shots, { recursive: true });
    browser = await launchBrowser(chromium!);
  });
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c();
    await browser?.close();
  });

  it('with SQLite: every page, a collection, a search, a training job live, a restart reconnected', async () => {
    const ws = workspace();
    cleanup.push(() => rmSync(ws.dir, { recursive: true, force: true }));
    let server: ServerProcess = await startServer(ws.env);
    cleanup.push(() => server.stop());
    const page = await browser.newPage();
    await tour(page, server.url, 'sqlite');

    if (python) {
      // A training job queued from the console, its progress followed live while a worker runs it.
      await page.goto(`${server.url}/console/#/models`);
      await waitFor(page, 'the job form', `document.querySelector('input[name=dataset]') !== null`);
      await page.type('input[name=dataset]', 'notes');
      await page.type('input[name=steps]', '60');
      await page.click('button::-p-text(Queue a head training job)');
      await waitFor(page, 'the queued job', `document.querySelector('[data-testid=train-jobs] [data-progress]') !== null`);
      const seen = new Set<string>();
      const worker: ChildProcess = spawn(python, ['-m', 'qembed_worker', 'work', '--data-dir', ws.env.QEMBED_DATA_DIR!, '--models-dir', ws.env.QEMBED_MODELS_DIR!, '--poll-seconds', '0.5', '--once'], {
        cwd: path.join(root, 'worker'),
        env: { ...process.env, HF_HUB_OFFLINE: '1' },
        stdio: 'ignore',
      });
      cleanup.push(() => void worker.kill('SIGTERM'));
      const deadline = Date.now() + 240_000;
      for (;;) {
        const now = await page.$eval('[data-testid=train-jobs] .job-figures', (el) => `${el.getAttribute('data-progress')} ${el.textContent}`);
        seen.add(now);
        if (now.includes('succeeded') || now.includes('failed') || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      const states = [...seen];
      expect(states.at(-1), states.join('\n')).toMatch(/^1\.0000 100% · succeeded/);
      expect(states[0]).toMatch(/^0\.0000 0% · queued/);
      await page.screenshot({ path: path.join(shots, 'sqlite-job.png'), fullPage: true });
    }

    // The service restarts under the open console: a banner while it is gone, then the page
    // carries on (same document, no reload) with the data of the restarted service.
    await page.goto(`${server.url}/console/#/collections`);
    await waitFor(page, 'the collections', `(document.querySelector('[data-testid=collections]')?.textContent ?? '').includes('notes')`);
    await page.evaluate(() => ((window as unknown as { kept: number }).kept = 42));
    const port = new URL(server.url).port;
    await server.stop();
    await waitFor(page, 'the offline banner', `document.querySelector('[data-testid=offline]') !== null`);
    server = await startServer({ ...ws.env, QEMBED_PORT: port });
    await waitFor(page, 'the reconnection', `document.querySelector('[data-testid=offline]') === null && (document.querySelector('[data-testid=collections]')?.textContent ?? '').includes('notes')`);
    expect(await page.evaluate(() => (window as unknown as { kept?: number }).kept)).toBe(42);
    await page.close();
  }, 360_000);

  it('with an API key: the console asks for it, refuses a wrong one with a clear message, then works', async () => {
    const ws = workspace();
    cleanup.push(() => rmSync(ws.dir, { recursive: true, force: true }));
    const server = await startServer({ ...ws.env, QEMBED_API_KEY: 'console-test-key' });
    cleanup.push(() => server.stop());
    const page = await browser.newPage();
    await page.goto(`${server.url}/console/`);
    await waitFor(page, 'the key prompt', `document.querySelector('input[name=api_key]') !== null`);
    expect(await seriousViolations(page)).toEqual([]);
    await page.screenshot({ path: path.join(shots, 'api-key.png'), fullPage: true });
    await page.type('input[name=api_key]', 'not-the-key');
    await page.click('.key-prompt button[type=submit]');
    await waitFor(page, 'the refusal', `document.querySelector('[data-testid=key-refused]') !== null`);
    expect(await text(page, '[data-testid=key-refused]')).toMatch(/QEMBED_UNAUTHORIZED.*not valid/);
    await page.$eval('input[name=api_key]', (el) => ((el as HTMLInputElement).value = ''));
    await page.type('input[name=api_key]', 'console-test-key');
    await page.click('.key-prompt button[type=submit]');
    await waitFor(page, 'the overview', `document.querySelector('[data-testid=model-name]') !== null && document.querySelector('[data-testid=routes]') !== null`);
    // The key lives in this tab's sessionStorage only.
    expect(await page.evaluate(() => [sessionStorage.getItem('qembed.apiKey'), localStorage.length])).toEqual(['console-test-key', 0]);
    await page.close();
  });

  describe.runIf(withPostgres)('with PostgreSQL', () => {
    let pg: PostgresServer;
    beforeAll(async () => {
      pg = await startPostgres();
    });
    afterAll(() => pg?.destroy());

    it('every page, a collection, a search', async () => {
      const ws = workspace();
      cleanup.push(() => rmSync(ws.dir, { recursive: true, force: true }));
      const server = await startServer({ ...ws.env, QEMBED_DATABASE_URL: pg.database('console') });
      cleanup.push(() => server.stop());
      const page = await browser.newPage();
      await tour(page, server.url, 'postgres');
      await page.close();
    }, 180_000);
  });
});
