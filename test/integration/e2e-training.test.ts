/**
 * End to end, as docker/compose.yaml runs it but on the host: the API and the worker as real
 * processes. Queue a short head-mode training job, wait for it, activate the new bundle, and
 * search a collection that was re-encoded for it. Needs the worker's Python (scripts/test
 * sets TEST_WORKER_PYTHON); CI must run it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FIXTURE_BUNDLE } from '../helpers/app.js';
import { workerPython } from '../helpers/dependencies.js';
import { type ServerProcess, startServer } from '../helpers/server-process.js';

const python = workerPython('the end-to-end training test');

const root = mkdtempSync(path.join(tmpdir(), 'qembed-e2e-'));
const dirs = { data: path.join(root, 'data'), models: path.join(root, 'models'), datasets: path.join(root, 'datasets') };
let server: ServerProcess | undefined;
let worker: ChildProcess | undefined;
const workerLog: string[] = [];

afterAll(async () => {
  worker?.kill('SIGTERM');
  await server?.stop();
});

const words = ['vector', 'binary', 'search', 'index', 'query', 'model', 'token', 'batch', 'rescore', 'memory', 'latency', 'corpus'];
const until = async <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 180_000): Promise<T> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\nworker log:\n${workerLog.join('')}`);
    await new Promise((r) => setTimeout(r, 250));
  }
};

describe.runIf(Boolean(python))('API + worker, end to end', () => {
  it('trains a head-mode QAT bundle, activates it, and searches a re-encoded collection', async () => {
    mkdirSync(dirs.data, { recursive: true });
    mkdirSync(path.join(dirs.datasets, 'tiny'), { recursive: true });
    cpSync(FIXTURE_BUNDLE, path.join(dirs.models, 'tiny'), { recursive: true });
    writeFileSync(
      path.join(dirs.datasets, 'tiny', 'corpus.jsonl'),
      Array.from({ length: 300 }, (_, i) => JSON.stringify({ _id: `d${i}`, title: '', text: `${words[i % 12]} ${words[(i * 5) % 12]} ${words[(i * 7) % 12]} passage ${i}` })).join('\n'),
    );

    server = await startServer({
      QEMBED_MODEL_DIR: path.join(dirs.models, 'tiny'),
      QEMBED_MODELS_DIR: dirs.models,
      QEMBED_DATA_DIR: dirs.data,
      QEMBED_DATASETS_DIR: dirs.datasets,
      QEMBED_INTRA_OP_THREADS: '1',
    });
    const api = async (method: string, url: string, body?: unknown) => {
      const res = await fetch(`${server!.url}${url}`, {
        method,
        ...(body !== undefined && { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
      });
      return { status: res.status, body: (await res.json()) as Record<string, any> };
    };
    const original = (await api('GET', '/health')).body.model.fingerprint as string;

    expect((await api('POST', '/collections', { name: 'docs' })).status).toBe(201);
    const documents = Array.from({ length: 60 }, (_, i) => ({ id: `doc${i}`, text: `${words[i % 12]} and ${words[(i * 3) % 12]}, document ${i}` }));
    expect((await api('PUT', '/collections/docs/documents', { documents })).status).toBe(200);

    worker = spawn(python!, ['-m', 'qembed_worker', 'work', '--data-dir', dirs.data, '--models-dir', dirs.models, '--poll-seconds', '0.5', '--lease-seconds', '30'], {
      cwd: path.resolve(import.meta.dirname, '../../worker'),
      env: { ...process.env, HF_HUB_OFFLINE: '1', PYTHONUNBUFFERED: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    worker.stdout!.on('data', (c: Buffer) => workerLog.push(c.toString()));
    worker.stderr!.on('data', (c: Buffer) => workerLog.push(c.toString()));

    const queued = await api('POST', '/train-jobs', { dataset: 'tiny', mode: 'head', steps: 25, batch_size: 32 });
    expect(queued.status).toBe(201);
    const job = await until('the training job', async () => {
      const j = (await api('GET', `/train-jobs/${queued.body.id}`)).body;
      if (j.state === 'failed' || j.state === 'cancelled') throw new Error(`job ${j.state}: ${j.message}\n${workerLog.join('')}`);
      return j.state === 'succeeded' ? j : undefined;
    });
    expect(job).toMatchObject({ progress: 1, step: 25, total_steps: 25 });
    expect(typeof job.loss).toBe('number');
    expect(job.worker).toMatch(/:\d+$/);
    const fingerprint = job.result.fingerprint as string;
    expect(fingerprint).not.toBe(original);

    const listed = (await api('GET', '/models')).body.models as { fingerprint: string; training: unknown; active: boolean }[];
    expect(listed.find((m) => m.fingerprint === fingerprint)?.training).toBeTruthy();

    const activated = await api('POST', `/models/${fingerprint}/activate`);
    expect(activated.status).toBe(200);
    expect(activated.body.reencoding).toEqual([{ collection: 'docs', documents: 60 }]);
    const collection = await until('the re-encoding', async () => {
      const c = (await api('GET', '/collections/docs')).body;
      return c.fingerprint === fingerprint ? c : undefined;
    });
    expect(collection).toMatchObject({ documents: 60, reencode: null });
    const found = await api('POST', '/search', { collection: 'docs', query: 'binary index', top_k: 5 });
    expect(found.status).toBe(200);
    expect(found.body.hits).toHaveLength(5);
    expect((await api('GET', '/health')).body.model.fingerprint).toBe(fingerprint);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/qembed_training_jobs\{state="succeeded"\} 1/);
  });
});
