import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FIXTURE_BUNDLE } from '../helpers/app.js';
import { startServer } from '../helpers/server-process.js';

const dataDir = mkdtempSync(path.join(tmpdir(), 'qembed-data-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('the service process', () => {
  it('starts on a bundle, serves, logs JSON with request ids, and drains on SIGTERM', async () => {
    const server = await startServer({ QEMBED_MODEL_DIR: FIXTURE_BUNDLE, QEMBED_DATA_DIR: dataDir, QEMBED_INTRA_OP_THREADS: '1' });
    const health = await fetch(`${server.url}/health`);
    expect(health.status).toBe(200);
    const body = (await health.json()) as { model: { chosen_by: string }; cpu: { arch: string; features: string[] } };
    expect(body.model.chosen_by).toBe('configuration');
    expect(body.cpu.arch).toBe(process.arch);
    // The gauges the service adds to the app's (training jobs by state) are labelled as declared.
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/^qembed_training_jobs\{state="succeeded"\} 0$/m);
    let answered = false;
    const inflight = fetch(`${server.url}/encode`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'test-request-42' },
      body: JSON.stringify({ inputs: Array.from({ length: 256 }, (_, i) => `text number ${i} `.repeat(20)) }),
    }).finally(() => (answered = true));
    // SIGTERM once the request is inside the service (a fixed 20 ms wait could send it before
    // the request arrived on a slow machine); a request answered first proves nothing: fail.
    while (((await (await fetch(`${server.url}/health`)).json()) as { queue_depth: number }).queue_depth === 0) {
      if (answered) throw new Error('the request was answered before SIGTERM could be sent while it ran');
    }
    const exit = server.stop('SIGTERM');
    const res = await inflight;
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('test-request-42');
    expect(((await res.json()) as { embeddings: unknown[] }).embeddings).toHaveLength(256);
    expect((await exit).code).toBe(0);
    const lines = server.logs.join('').split('\n').filter((l) => l.startsWith('{'));
    expect(lines.some((l) => (JSON.parse(l) as { reqId?: string }).reqId === 'test-request-42')).toBe(true);
  });

  it('refuses to start on a folder that is not a bundle, and says why', async () => {
    await expect(startServer({ QEMBED_MODEL_DIR: dataDir, QEMBED_DATA_DIR: dataDir })).rejects.toThrow(/cannot start: .*missing manifest\.json, model\.onnx, tokenizer\.json/);
  });

  it('refuses an invalid setting, naming the variable', async () => {
    await expect(startServer({ QEMBED_MODEL_DIR: FIXTURE_BUNDLE, QEMBED_PORT: 'eighty' })).rejects.toThrow(/QEMBED_PORT="eighty" is invalid/);
    await expect(startServer({ QEMBED_MODEL_DIR: FIXTURE_BUNDLE, QEMBED_PRECISION: 'int8' })).rejects.toThrow(/unknown setting\(s\) QEMBED_PRECISION/);
  });
});
