/**
 * The README's picture of the console, made again on demand: the service on the default bundle
 * with a throw-away data folder, a BEIR collection ingested through the API, its recall measured by
 * the service, then Debian's chromium showing the search playground for the collection's first
 * query at the multiplier given (default 1, where the first stage alone shows what it misses).
 *
 *   npx tsx scripts/console-screenshot.ts --dataset ../shared/datasets/msmarco-5k --out docs/images/console-search.png
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import puppeteer from 'puppeteer-core';

const root = path.resolve(import.meta.dirname, '..');
const { values } = parseArgs({
  options: {
    dataset: { type: 'string' },
    out: { type: 'string', default: path.join(root, 'docs/images/console-search.png') },
    multiplier: { type: 'string', default: '1' },
    port: { type: 'string', default: '18123' },
    chromium: { type: 'string', default: process.env.CHROMIUM_BIN || '/usr/bin/chromium' },
  },
});
if (!values.dataset) throw new Error('--dataset DIR (a BEIR folder with corpus.jsonl and queries.jsonl) is required');
const name = path.basename(values.dataset);
const url = `http://127.0.0.1:${values.port}`;
const data = mkdtempSync(path.join(tmpdir(), 'qembed-screenshot-'));
const server = spawn(process.execPath, ['dist/src/server.js'], {
  cwd: root,
  env: { ...process.env, QEMBED_MODEL_DIR: path.join(root, 'models/default'), QEMBED_DATA_DIR: data, QEMBED_PORT: values.port, QEMBED_HOST: '127.0.0.1', QEMBED_LOG_LEVEL: 'warn' },
  stdio: 'inherit',
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
try {
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/health`)).ok) break;
    } catch {
      if (i > 600) throw new Error('the service did not start');
    }
    await sleep(200);
  }
  const ingest = spawnSync(process.execPath, ['dist/src/cli/qembed.js', 'ingest', '--collection', name, '--create', '--url', url, path.join(values.dataset, 'corpus.jsonl')], { cwd: root, stdio: 'inherit' });
  if (ingest.status !== 0) throw new Error('ingest failed');
  // Wait for the service's own recall measurement (on documents standing in for queries).
  for (;;) {
    const c = (await (await fetch(`${url}/collections/${name}`)).json()) as { quality: { measured_queries: number; measuring: unknown } };
    if (c.quality.measured_queries > 0 && !c.quality.measuring) break;
    await sleep(1000);
  }
  const query = (JSON.parse(readFileSync(path.join(values.dataset, 'queries.jsonl'), 'utf8').split('\n')[0]!) as { text: string }).text;
  const browser = await puppeteer.launch({ executablePath: values.chromium, headless: true, args: ['--no-sandbox', '--disable-gpu'], defaultViewport: { width: 1280, height: 1600 } });
  const page = await browser.newPage();
  await page.goto(`${url}/console/#/search?collection=${encodeURIComponent(name)}`);
  await page.waitForSelector('input[name=query]');
  await page.type('input[name=query]', query);
  await page.select('select[name=rescore_multiplier]', values.multiplier);
  await page.click('.search-form button[type=submit]');
  await page.waitForSelector('[data-testid=overlap]');
  await page.focus('body');
  await sleep(500);
  // The first screen only: the form, both rankings and the recall chart fit in 1,600 pixels.
  await page.screenshot({ path: values.out });
  await browser.close();
  console.log(`wrote ${values.out}`);
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  rmSync(data, { recursive: true, force: true });
}
