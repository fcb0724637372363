/**
 * Model activation while the request queue is saturated (the scenario that left a collection
 * answering 409 until a restart): 32 clients sending 16 texts each keep /encode over a
 * QEMBED_QUEUE_SIZE of 256, another bundle is activated, and the collection's re-encoding still
 * completes; every search meanwhile answers 200 on the old codes (or 429 like any request), and
 * no document is lost.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadBundle } from '../../src/encoder/bundle.js';
import { bundleCopy } from '../helpers/bundles.js';
import { startServer } from '../helpers/server-process.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const temp = (prefix: string) => {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  dirs.push(d);
  return d;
};

describe('activation under a saturated queue', () => {
  it('re-encodes the collection to the end while searches keep answering', async () => {
    const models = temp('qembed-models-');
    const a = bundleCopy(() => {}, { parent: models, name: 'a' });
    const b = bundleCopy((m) => (m.calibration.max = m.calibration.max.map((x) => x + 0.05)), { parent: models, name: 'b' });
    const bFingerprint = (await loadBundle(b)).fingerprint;
    const server = await startServer({
      QEMBED_MODEL_DIR: a,
      QEMBED_MODELS_DIR: models,
      QEMBED_DATA_DIR: temp('qembed-data-'),
      QEMBED_INTRA_OP_THREADS: '1',
      QEMBED_QUEUE_SIZE: '256',
      QEMBED_MAX_INPUTS: '64',
      QEMBED_LOG_LEVEL: 'warn',
    });
    const call = (method: string, url: string, body?: unknown) =>
      fetch(`${server.url}${url}`, { method, ...(body !== undefined && { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }) });
    try {
      expect((await call('POST', '/collections', { name: 'docs' })).status).toBe(201);
      for (let i = 0; i < 1000; i += 50) {
        const documents = Array.from({ length: 50 }, (_, k) => ({ id: `d${i + k}`, text: `document ${i + k} about ${['tea', 'maps', 'ships'][(i + k) % 3]} `.repeat(3) }));
        expect((await call('PUT', '/collections/docs/documents', { documents })).status).toBe(200);
      }

      const statuses = new Map<number, number>();
      let stop = false;
      const clients = Array.from({ length: 32 }, async () => {
        while (!stop) {
          const r = await call('POST', '/encode', { inputs: Array.from({ length: 16 }, (_, i) => `short text ${i}`) });
          statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
          await r.arrayBuffer();
        }
      });
      // Activate once the queue is full (a client refused), not after a fixed wait.
      while (!statuses.has(429)) await new Promise((r) => setTimeout(r, 10));
      expect((await call('POST', `/models/${bFingerprint}/activate`)).status).toBe(200);

      const searches: number[] = [];
      let collection: { fingerprint: string; documents: number; reencode: unknown } | undefined;
      for (let i = 0; i < 3000; i++) {
        collection = (await (await call('GET', '/collections/docs')).json()) as typeof collection;
        if (collection!.fingerprint === bFingerprint) break;
        const s = await call('POST', '/search', { collection: 'docs', query: 'tea', top_k: 5 });
        searches.push(s.status);
        await s.arrayBuffer();
      }
      stop = true;
      await Promise.all(clients);

      expect(statuses.get(429) ?? 0).toBeGreaterThan(0); // the queue really was full
      expect(collection).toMatchObject({ fingerprint: bFingerprint, documents: 1000, reencode: null });
      expect(searches.length).toBeGreaterThan(0);
      expect(searches.every((s) => s === 200 || s === 429)).toBe(true);
      expect(searches.filter((s) => s === 200).length).toBeGreaterThan(0);
      const after = await call('POST', '/search', { collection: 'docs', query: 'tea', top_k: 5 });
      expect(after.status).toBe(200);
    } finally {
      await server.stop('SIGTERM');
    }
  });
});
