/**
 * Stateless API replicas on one PostgreSQL database (QEMBED_DATABASE_URL), as real server
 * processes: what one acknowledges, the next search of another finds; a replica killed with
 * SIGKILL in the middle of an ingest loses nothing it acknowledged; a PostgreSQL restart during
 * an ingest answers 503 QEMBED_DATABASE_UNAVAILABLE, and the retry succeeds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBundle } from '../../src/encoder/bundle.js';
import { FIXTURE_BUNDLE } from '../helpers/app.js';
import { bundleCopy } from '../helpers/bundles.js';
import { ingestUntilKilled } from '../helpers/ingest-kill.js';
import { FOLLOW_INTERVAL_MS } from '../../src/composition.js';
import { postgresBin, postgresNotice, type PostgresServer, startPostgres } from '../helpers/postgres.js';
import { type ServerProcess, startServer } from '../helpers/server-process.js';
import { vectorsInRanges } from '../helpers/transform-data.js';

postgresNotice('the replica tests (test/postgres/replicas.test.ts)');


const dirs: string[] = [];
let pg: PostgresServer | undefined;
let databases = 0;
beforeAll(async () => {
  if (postgresBin) pg = await startPostgres();
}, 60_000);
afterAll(() => {
  pg?.destroy();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A replica: its own data folder (training jobs), the shared database. */
function replica(url: string, env: Record<string, string> = {}): Promise<ServerProcess> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'qembed-replica-'));
  dirs.push(dataDir);
  return startServer({ QEMBED_MODEL_DIR: FIXTURE_BUNDLE, QEMBED_DATA_DIR: dataDir, QEMBED_DATABASE_URL: url, QEMBED_INTRA_OP_THREADS: '1', QEMBED_LOG_LEVEL: 'warn', ...env });
}
async function until<T>(what: string, probe: () => Promise<T | undefined>, seconds = 30): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function api(server: ServerProcess, method: string, url: string, body?: unknown) {
  const res = await fetch(`${server.url}${url}`, {
    method,
    ...(body !== undefined && { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  return { status: res.status, headers: res.headers, json: (await res.json()) as Record<string, unknown> };
}
const ids = (json: Record<string, unknown>) => (json.hits as { id: string }[]).map((h) => h.id).sort();
const batch = (b: number, n = 20) => Array.from({ length: n }, (_, i) => ({ id: `b${b}-d${i}`, text: `batch ${b} document ${i} ${'words '.repeat(1 + (i % 5))}`, metadata: { batch: b } }));

describe.runIf(postgresBin)('API replicas on one PostgreSQL database', () => {
  it('two replicas start at once on a new database, and each finds what the other acknowledged at its next search', async () => {
    const url = pg!.database(`replicas_${++databases}`);
    // Both migrate the empty database at the same time (an advisory lock orders them).
    const [a, b] = await Promise.all([replica(url), replica(url)]);
    try {
      expect((await api(a, 'POST', '/collections', { name: 'shared' })).status).toBe(201);
      expect((await api(b, 'POST', '/collections', { name: 'shared' })).json).toMatchObject({ error: { code: 'QEMBED_COLLECTION_EXISTS' } });
      for (let round = 0; round < 4; round++) {
        const [writer, reader] = round % 2 ? [b, a] : [a, b];
        expect((await api(writer, 'PUT', '/collections/shared/documents', { documents: batch(round) })).status).toBe(200);
        const found = await api(reader, 'POST', '/search', { collection: 'shared', query: 'document', top_k: 1000, rescore: false, filter: { batch: round } });
        expect(ids(found.json)).toEqual(batch(round).map((d) => d.id).sort());
        expect((found.json.stats as { documents_scanned: number }).documents_scanned).toBe(20);
        // Deleted on one, gone from the other's next search.
        expect((await api(reader, 'DELETE', `/collections/shared/documents/b${round}-d0`)).status).toBe(200);
        const after = await api(writer, 'POST', '/search', { collection: 'shared', query: 'document', top_k: 1000, rescore: false });
        expect(ids(after.json)).not.toContain(`b${round}-d0`);
        expect(ids(after.json)).toHaveLength(19 * (round + 1));
      }
      const described = [(await api(a, 'GET', '/collections/shared')).json, (await api(b, 'GET', '/collections/shared')).json];
      expect(described[0]).toMatchObject({ documents: 76 });
      expect(described[1]).toMatchObject({ documents: 76 });
    } finally {
      await Promise.all([a.stop('SIGTERM'), b.stop('SIGTERM')]);
    }
  });

  it('switches a collection\'s first-stage transform on one replica: the others serve it from the swap on, and write its codes', async () => {
    const url = pg!.database(`replicas_${++databases}`);
    const [a, b] = await Promise.all([replica(url), replica(url)]);
    try {
      const bundle = await loadBundle(FIXTURE_BUNDLE);
      const vectors = vectorsInRanges({ ranges: bundle.ranges }, 400, 31);
      const queries = vectorsInRanges({ ranges: bundle.ranges }, 10, 32);
      expect((await api(a, 'POST', '/collections', { name: 't' })).status).toBe(201);
      for (let i = 0; i < vectors.length; i += 100) {
        const documents = vectors.slice(i, i + 100).map((v, j) => ({ id: `d${i + j}`, vector: Array.from(v) }));
        expect((await api(b, 'PUT', '/collections/t/documents', { documents, model: bundle.fingerprint })).status).toBe(200);
      }
      const firstStage = async (server: ServerProcess) =>
        Promise.all(queries.map(async (q) => ((await api(server, 'POST', '/search', { collection: 't', vector: Array.from(q), top_k: 10, rescore: false })).json.hits as { id: string }[]).map((h) => h.id)));
      const before = await firstStage(b);
      expect((await api(a, 'POST', '/collections/t/transform', { transform: 'rotation', seed: 4 })).status).toBe(202);
      await until('the switch on replica a', async () => (((await api(a, 'GET', '/collections/t')).json.transform as { switching: unknown }).switching === null ? true : undefined));
      // Replica b reads the transform from the collection and reloads its index from the swapped codes.
      expect(((await api(b, 'GET', '/collections/t')).json.transform as { served: string }).served).toBe('rotation-4');
      const after = await firstStage(b);
      expect(after).toEqual(await firstStage(a));
      expect(after).not.toEqual(before);
      // A document written through b gets the transform's code: a's next Hamming search for its own vector puts it at distance 0 (score 1;
      // an uncentred rotation of these vectors gives many documents that code, so the whole ranking is read).
      expect((await api(b, 'PUT', '/collections/t/documents', { documents: [{ id: 'late', vector: Array.from(queries[0]!) }], model: bundle.fingerprint })).status).toBe(200);
      const found = await api(a, 'POST', '/search', { collection: 't', vector: Array.from(queries[0]!), top_k: 1000, rescore: false });
      expect((found.json.hits as { id: string; score: number }[]).find((h) => h.id === 'late')?.score).toBe(1);
      // Back to first dims on b: a answers as before the switch (the late document aside).
      expect((await api(b, 'POST', '/collections/t/transform', { transform: 'first-dims' })).status).toBe(200);
      expect((await firstStage(a)).slice(1)).toEqual(before.slice(1));
    } finally {
      await Promise.all([a.stop('SIGTERM'), b.stop('SIGTERM')]);
    }
  });

  it('loses nothing a replica acknowledged when it is killed with SIGKILL in the middle of an ingest', async () => {
    const url = pg!.database(`replicas_${++databases}`);
    const [a, b] = await Promise.all([replica(url), replica(url)]);
    try {
      expect((await api(a, 'POST', '/collections', { name: 'bulk' })).status).toBe(201);
      const { acknowledged, sent } = await ingestUntilKilled(a, 8, async (n) => (await api(a, 'PUT', '/collections/bulk/documents', { documents: batch(n, 30) })).status);
      expect((await a.exited).signal).toBe('SIGKILL');
      expect(sent.size).toBeGreaterThan(acknowledged.size);
      // Through the other replica: every acknowledged batch whole, every other whole or absent.
      for (const n of sent) {
        const found = await api(b, 'POST', '/search', { collection: 'bulk', query: 'document', top_k: 1000, rescore: false, filter: { batch: n } });
        const got = ids(found.json);
        if (acknowledged.has(n)) expect(got, `acknowledged batch ${n}`).toEqual(batch(n, 30).map((d) => d.id).sort());
        else expect([0, 30]).toContain(got.length);
      }
    } finally {
      await b.stop('SIGTERM');
    }
  });

  it('follows an activation made on another replica: serves the new model within seconds, while one replica re-encodes', async () => {
    const url = pg!.database(`replicas_${++databases}`);
    const models = mkdtempSync(path.join(tmpdir(), 'qembed-models-'));
    dirs.push(models);
    const a = bundleCopy(() => {}, { parent: models, name: 'a' });
    const b = bundleCopy((m) => (m.calibration.max = m.calibration.max.map((x) => x + 0.05)), { parent: models, name: 'b' });
    const bFingerprint = (await loadBundle(b)).fingerprint;
    const env = { QEMBED_MODEL_DIR: a, QEMBED_MODELS_DIR: models };
    const [one, two] = await Promise.all([replica(url, env), replica(url, env)]);
    try {
      expect((await api(one, 'POST', '/collections', { name: 'docs' })).status).toBe(201);
      for (let i = 0; i < 4; i++) expect((await api(two, 'PUT', '/collections/docs/documents', { documents: batch(i, 50) })).status).toBe(200);
      // Activating loads the model on this replica: the same work the other does to follow it.
      let started = performance.now();
      expect((await api(one, 'POST', `/models/${bFingerprint}/activate`)).status).toBe(200);
      const activateMs = performance.now() - started;
      // The other replica serves the activated model: it checks every FOLLOW_INTERVAL_MS, then
      // loads it. Within two checks and ten times the load measured here (not a fixed figure
      // that a slower machine misses: the check's interval is the only constant).
      started = performance.now();
      await until('the other replica to serve the activated model', async () => ((await api(two, 'GET', '/health')).json.model as { fingerprint: string }).fingerprint === bFingerprint || undefined);
      expect(performance.now() - started).toBeLessThan(2 * FOLLOW_INTERVAL_MS + 10 * activateMs);
      // The collection is re-encoded once, then bound to the new model on both.
      for (const r of [one, two]) {
        await until('the re-encoding to finish', async () => ((await api(r, 'GET', '/collections/docs')).json.fingerprint === bFingerprint ? true : undefined), 60);
        const found = await api(r, 'POST', '/search', { collection: 'docs', query: 'batch 2 document', top_k: 1000, rescore: false, filter: { batch: 2 } });
        expect(found.status).toBe(200);
        expect(ids(found.json)).toEqual(batch(2, 50).map((d) => d.id).sort());
      }
    } finally {
      await Promise.all([one.stop('SIGTERM'), two.stop('SIGTERM')]);
    }
  });

  it('measures recall on each replica from the queries it served; the target is shared, and a replica starting reads the fullest saved sample', async () => {
    const url = pg!.database(`replicas_${++databases}`);
    // The whole core for the measurement: the test waits for it, not for a 3% share.
    const env = { QEMBED_QUALITY_CPU_PERCENT: '100' };
    const [a, b] = await Promise.all([replica(url, env), replica(url, env)]);
    type Quality = { basis: string | null; measured_queries: number; sampled_queries: number; target_recall: number; pending: number };
    const quality = async (r: ServerProcess) => (await api(r, 'GET', '/collections/q')).json.quality as Quality;
    let c: ServerProcess | undefined;
    try {
      expect((await api(a, 'POST', '/collections', { name: 'q' })).status).toBe(201);
      for (let i = 0; i < 4; i++) expect((await api(a, 'PUT', '/collections/q/documents', { documents: batch(i, 50) })).status).toBe(200);
      for (let i = 0; i < 60; i++) expect((await api(a, 'POST', '/search', { collection: 'q', query: `document ${i} of batch ${i % 4}` })).status).toBe(200);
      const measured = await until('replica a to measure its 60 queries', async () => {
        const q = await quality(a);
        return q.basis === 'queries' && q.measured_queries === 60 ? q : undefined;
      });
      expect(measured.sampled_queries).toBe(60);
      // b served no query: its own sample is empty (it measures documents standing in meanwhile).
      const other = await quality(b);
      expect(other.sampled_queries).toBe(0);
      expect(other.basis).not.toBe('queries');
      // The target is a setting of the collection, in the database: every replica sees it.
      expect((await api(b, 'PATCH', '/collections/q', { target_recall: 0.9 })).status).toBe(200);
      expect((await quality(a)).target_recall).toBe(0.9);
      // a saves its sample as it stops; b, holding fewer queries, does not replace it when it stops.
      await a.stop('SIGTERM');
      await b.stop('SIGTERM');
      c = await replica(url, env);
      const read = await quality(c);
      expect(read).toMatchObject({ basis: 'queries', measured_queries: 60, sampled_queries: 60, pending: 0, target_recall: 0.9 });
    } finally {
      await Promise.all([a, b, ...(c ? [c] : [])].map((r) => r.stop('SIGTERM')));
    }
  });

  it('answers 503 QEMBED_DATABASE_UNAVAILABLE while PostgreSQL restarts, and the retry succeeds', async () => {
    const url = pg!.database(`replicas_${++databases}`);
    const a = await replica(url);
    try {
      expect((await api(a, 'POST', '/collections', { name: 'c' })).status).toBe(201);
      expect((await api(a, 'PUT', '/collections/c/documents', { documents: batch(0) })).status).toBe(200);
      pg!.stop();
      const during = await api(a, 'PUT', '/collections/c/documents', { documents: batch(1) });
      expect(during.status).toBe(503);
      expect(during.json).toMatchObject({ error: { code: 'QEMBED_DATABASE_UNAVAILABLE' } });
      expect(Number(during.headers.get('retry-after'))).toBeGreaterThan(0);
      const searching = await api(a, 'POST', '/search', { collection: 'c', query: 'document' });
      expect(searching.json).toMatchObject({ error: { code: 'QEMBED_DATABASE_UNAVAILABLE' } });
      pg!.start();
      const retry = await api(a, 'PUT', '/collections/c/documents', { documents: batch(1) });
      expect(retry.status).toBe(200);
      const all = await api(a, 'POST', '/search', { collection: 'c', query: 'document', top_k: 1000, rescore: false });
      expect(ids(all.json)).toHaveLength(40);
    } finally {
      await a.stop('SIGTERM');
    }
  });
});
