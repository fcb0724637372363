/**
 * Transform fits through the worker, end to end in one process plus the worker's: an automatic
 * fit is asked for when a collection reaches its size, the sample of int8 codes is written for
 * the worker, the worker (python -m qembed_worker work --once) fits it, the service takes the
 * result, stores the transform with the collection and switches to it only because it measures
 * better; the routes' bad requests get stable codes. Needs the worker's Python (scripts/test sets
 * TEST_WORKER_PYTHON); CI must run it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { buildService, type Service } from '../../src/service.js';
import { errorOf, FIXTURE_BUNDLE } from '../helpers/app.js';
import { runQembed } from '../helpers/cli.js';
import { workerPython } from '../helpers/dependencies.js';
import { vectorsInRanges } from '../helpers/transform-data.js';

const python = workerPython('the transform fit test');
const dataDir = mkdtempSync(path.join(tmpdir(), 'qembed-fits-'));
let service: Service;

const api = async (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown) => {
  const res = await service.app.inject({ method, url, ...(payload !== undefined && { payload: payload as object }) });
  return { status: res.statusCode, body: res.json() as Record<string, any>, res };
};

/** Runs the worker until the queue is empty. */
function work(): string {
  const run = spawnSync(python!, ['-m', 'qembed_worker', 'work', '--data-dir', dataDir, '--models-dir', path.join(dataDir, 'models'), '--once', '--wait-seconds', '5'], {
    cwd: path.resolve(import.meta.dirname, '../../worker'),
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (run.status !== 0) throw new Error(`worker exited ${run.status}: ${run.stderr}`);
  return run.stdout + run.stderr;
}

beforeAll(async () => {
  const config = loadConfig({ QEMBED_DATA_DIR: dataDir, QEMBED_AUTO_FIT_DOCUMENTS: '1000', QEMBED_FIT_METHOD: 'itq' }, { intraOpThreads: 1 });
  service = await buildService(config, { database: 'memory', model: { dir: FIXTURE_BUNDLE }, jobs: 'file' });
  await service.app.ready();
});
afterAll(async () => {
  await service?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function fill(name: string, n: number, seed: number) {
  const encoder = service.parts.encoder();
  expect((await api('POST', '/collections', { name })).status).toBe(201);
  const vectors = vectorsInRanges(encoder.quantizer, n, seed);
  for (let i = 0; i < n; i += 100) {
    const documents = vectors.slice(i, i + 100).map((v, j) => ({ id: `d${i + j}`, vector: Array.from(v) }));
    expect((await api('PUT', `/collections/${name}/documents`, { documents, model: encoder.fingerprint })).status).toBe(200);
  }
}

describe.runIf(Boolean(python))('transform fits', () => {
  it('fits a collection that reached its size, and serves the transform because it measures better', async () => {
    const { fits } = service.parts;
    await fill('c', 1500, 21);
    await fits!.autoFit();
    const [job] = (await api('GET', '/collections/c/fits')).body.fits;
    expect(job).toMatchObject({ state: 'queued', collection: 'c', spec: { method: 'itq', bits: [32], holdout: 150 } });
    expect(existsSync(path.join(dataDir, 'fit-jobs', job.id, 'codes.npy'))).toBe(true);
    // Not asked again while it is queued, nor before the collection grows.
    await fits!.autoFit();
    expect((await api('GET', '/collections/c/fits')).body.fits).toHaveLength(1);

    work();
    const done = (await api('GET', '/collections/c/fits')).body.fits[0];
    expect(done).toMatchObject({ state: 'succeeded', progress: 1, imported_at: null });
    await fits!.poll();
    let c = (await api('GET', '/collections/c')).body;
    const fitted = c.transform.available.find((t: { method: string }) => t.method === 'itq');
    expect(fitted).toMatchObject({ bits: 32, summary: { source: 'fit', job: job.id, reason: 'auto', documentsAtFit: 1500 } });
    expect(fitted.summary.evaluation.rows.length).toBeGreaterThan(0);
    // The switch measures the fitted codes against first dims, then swaps them in.
    const deadline = Date.now() + 60_000;
    while (c.transform.switching && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      c = (await api('GET', '/collections/c')).body;
    }
    expect(c.transform.served).toBe(fitted.fingerprint);
    const comparison = c.transform.available.find((t: { fingerprint: string }) => t.fingerprint === fitted.fingerprint).summary.comparison;
    expect(comparison).toMatchObject({ decision: 'switched', served: { transform: 'first-dims' } });
    expect(comparison.candidate.recall.hamming).toBeGreaterThan(comparison.served.recall.hamming);
    expect(readdirSync(path.join(dataDir, 'fit-jobs'))).not.toContain(job.id);
    expect((await service.parts.search.check('c')).problems).toEqual([]);
    // Grown by QEMBED_AUTO_FIT_GROWTH_PERCENT (100) since its last fit: fitted again; not before.
    const more = vectorsInRanges(service.parts.encoder().quantizer, 1600, 23);
    for (let i = 0; i < more.length; i += 100) {
      const documents = more.slice(i, i + 100).map((v, j) => ({ id: `m${i + j}`, vector: Array.from(v) }));
      expect((await api('PUT', '/collections/c/documents', { documents, model: service.parts.encoder().fingerprint })).status).toBe(200);
      if (i === 1300) {
        await fits!.autoFit(); // 2,900 documents: not yet (3,000 is twice the 1,500 of the last fit)
        expect((await api('GET', '/collections/c/fits')).body.fits).toHaveLength(1);
      }
    }
    await fits!.autoFit();
    const refit = (await api('GET', '/collections/c/fits')).body.fits;
    expect(refit).toHaveLength(2);
    expect(refit[0]).toMatchObject({ state: 'queued', spec: { method: 'itq' } });
    expect((await api('DELETE', `/collections/c/fits/${refit[0].id}`)).body.state).toBe('cancelled');
    await fits!.poll();

    // Searches code their queries with it.
    const hits = (await api('POST', '/search', { collection: 'c', vector: Array.from(vectorsInRanges(service.parts.encoder().quantizer, 1, 99)[0]!), top_k: 5 })).body.hits;
    expect(hits).toHaveLength(5);
  });

  it('queues and cancels a fit asked for by hand; refuses what it cannot do with stable codes, changing nothing', async () => {
    await fill('h', 1200, 22);
    const queued = await api('POST', '/collections/h/fit', { method: 'qat', steps: 20, switch: 'never' });
    expect(queued.status).toBe(202);
    expect(queued.body).toMatchObject({ state: 'queued', spec: { method: 'qat', steps: 20 } });
    expect(queued.body.spec.bundle).toBeUndefined();
    const again = await api('POST', '/collections/h/fit', {});
    expect([again.status, errorOf(again.res).code]).toEqual([409, 'QEMBED_CONFLICT']);
    const cancelled = await api('DELETE', `/collections/h/fits/${queued.body.id}`);
    expect(cancelled.body.state).toBe('cancelled');
    await service.parts.fits!.poll();
    expect(readdirSync(path.join(dataDir, 'fit-jobs'))).not.toContain(queued.body.id);

    const cases: [string, string, unknown, number, string][] = [
      ['POST', '/collections/missing/fit', {}, 404, 'QEMBED_COLLECTION_NOT_FOUND'],
      ['POST', '/collections/h/fit', { method: 'pca' }, 400, 'QEMBED_INVALID_REQUEST'],
      ['POST', '/collections/h/fit', { max_documents: 10 }, 400, 'QEMBED_INVALID_REQUEST'],
      ['DELETE', '/collections/h/fits/nope', undefined, 404, 'QEMBED_JOB_NOT_FOUND'],
      ['POST', '/collections/h/transform', { transform: 'nope' }, 404, 'QEMBED_TRANSFORM_NOT_FOUND'],
      ['POST', '/collections/h/transform', { transform: 'first-dims', seed: 3 }, 400, 'QEMBED_INVALID_TRANSFORM'],
      ['POST', '/collections/h/transform', { transform: 'first-dims', policy: 'sometimes' }, 400, 'QEMBED_INVALID_REQUEST'],
    ];
    for (const [method, url, body, status, code] of cases) {
      const r = await api(method as 'POST', url, body);
      expect([url, r.status, errorOf(r.res).code]).toEqual([url, status, code]);
    }
    expect((await api('POST', '/collections', { name: 'empty' })).status).toBe(201);
    const small = await api('POST', '/collections/empty/fit', {});
    expect([small.status, errorOf(small.res).code]).toEqual([409, 'QEMBED_COLLECTION_TOO_SMALL']);
    expect((await api('GET', '/collections/empty/fits')).body.fits).toEqual([]);
    expect((await api('GET', '/collections/h')).body.transform).toMatchObject({ served: null, available: [], switching: null });

    // By hand: a seeded rotation, then back to first dims.
    const rotated = await api('POST', '/collections/h/transform', { transform: 'rotation', seed: 3 });
    expect(rotated.status).toBe(202);
    const deadline = Date.now() + 60_000;
    let h = rotated.body.collection;
    while (h.transform.switching && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      h = (await api('GET', '/collections/h')).body;
    }
    expect(h.transform.served).toBe('rotation-3');
    const back = await api('POST', '/collections/h/transform', { transform: 'first-dims' });
    expect([back.status, back.body.state, back.body.collection.transform.served]).toEqual([200, 'served', null]);
    expect((await service.parts.search.check('h')).problems).toEqual([]);
  });

  it('qembed fit switches a collection and queues fits through a server, and says why it cannot', async () => {
    const url = await service.app.listen({ port: 0, host: '127.0.0.1' });
    const switched = await runQembed(['fit', 'h', '--url', url, '--switch', 'rotation', '--seed', '9']);
    expect([switched.code, switched.stderr]).toEqual([0, expect.any(String)]);
    expect(switched.stdout).toContain('first-stage codes made with rotation-9');
    const queued = await runQembed(['fit', 'h', '--url', url, '--method', 'itq', '--no-wait']);
    expect(queued.code).toBe(0);
    const { fit } = JSON.parse(queued.stdout) as { fit: string };
    expect((await api('GET', '/collections/h/fits')).body.fits[0]).toMatchObject({ id: fit, state: 'queued', spec: { method: 'itq' } });
    expect((await api('DELETE', `/collections/h/fits/${fit}`)).body.state).toBe('cancelled');
    const missing = await runQembed(['fit', 'missing', '--url', url]);
    expect([missing.code, missing.stderr]).toEqual([1, expect.stringContaining('QEMBED_COLLECTION_NOT_FOUND')]);
    const noUrl = await runQembed(['fit', 'h']);
    expect([noUrl.code, noUrl.stderr]).toEqual([2, expect.stringContaining('--url is required')]);
  });
});
