import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { FIXTURE_BUNDLE } from '../helpers/app.js';
import { runQembed } from '../helpers/cli.js';
import { ingestUntilKilled } from '../helpers/ingest-kill.js';
import { type ServerProcess, startServer } from '../helpers/server-process.js';

const dataDirs: string[] = [];
afterAll(() => {
  for (const d of dataDirs) rmSync(d, { recursive: true, force: true });
});
const BATCH = 40;
const batchDocs = (b: number) =>
  Array.from({ length: BATCH }, (_, i) => ({ id: `b${b}-d${i}`, text: `batch ${b} document ${i}: ${'lorem ipsum '.repeat(1 + ((b * 7 + i) % 9))}`, metadata: { batch: b } }));

async function api(server: ServerProcess, method: string, url: string, body?: unknown) {
  const res = await fetch(`${server.url}${url}`, {
    method,
    ...(body !== undefined && { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const qembed = (args: string[]) => runQembed(args);

// Trials kill the server after different numbers of acknowledged batches, so that it dies at
// different points of its write path.
const TRIALS = [20, 7, 13, 4, 26];

describe('a server killed with SIGKILL during a large ingest', () => {
  it.each(TRIALS)('loses no acknowledged batch, leaves no half-written document, and restarts with the index equal to the database (killed after %i batches)', async (killAfter) => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'qembed-durability-'));
    dataDirs.push(dataDir);
    const env = { QEMBED_MODEL_DIR: FIXTURE_BUNDLE, QEMBED_DATA_DIR: dataDir, QEMBED_INTRA_OP_THREADS: '1', QEMBED_LOG_LEVEL: 'warn' };
    const server = await startServer(env);
    expect((await api(server, 'POST', '/collections', { name: 'bulk' })).status).toBe(201);

    // Ingest with three batches in flight; kill the process once `killAfter` are acknowledged,
    // while the others are being encoded or written.
    const { acknowledged, sent, next } = await ingestUntilKilled(server, killAfter, async (b) => (await api(server, 'PUT', '/collections/bulk/documents', { documents: batchDocs(b) })).status);
    expect((await server.exited).signal).toBe('SIGKILL');
    expect(acknowledged.size).toBeGreaterThanOrEqual(killAfter);
    // Batches were in flight when it died.
    expect(sent.size).toBeGreaterThan(acknowledged.size);

    // The database on its own: every acknowledged batch whole; every other batch whole or absent.
    const db = new Database(path.join(dataDir, 'qembed.sqlite'), { readonly: true });
    const rows = db.prepare('SELECT doc_id, text, json_extract(metadata, \'$.batch\') AS batch FROM documents').all() as { doc_id: string; text: string; batch: number }[];
    db.close();
    const byBatch = new Map<number, Map<string, string>>();
    for (const r of rows) {
      if (!byBatch.has(r.batch)) byBatch.set(r.batch, new Map());
      byBatch.get(r.batch)!.set(r.doc_id, r.text);
    }
    for (const b of acknowledged) expect(byBatch.has(b), `acknowledged batch ${b} is missing`).toBe(true);
    for (const [b, docs] of byBatch) {
      expect(sent.has(b)).toBe(true);
      expect(docs.size, `batch ${b} is partly written`).toBe(BATCH);
      for (const d of batchDocs(b)) expect(docs.get(d.id)).toBe(d.text);
    }

    // Every stored code is the code of its text, lengths and counters are right, and an index
    // loaded the way the server loads it equals the rows.
    const check = await qembed(['check', '--reencode', '--data-dir', dataDir, '--model-dir', FIXTURE_BUNDLE]);
    expect(check.code, check.stderr + check.stdout).toBe(0);
    const report = JSON.parse(check.stdout.trim()) as { documents: number; indexed: number; problems: string[] };
    expect(report).toMatchObject({ documents: rows.length, indexed: rows.length, problems: [] });

    // The restarted server's index holds exactly the stored documents: each batch found by a
    // filtered search is the batch the database holds, and an unfiltered search scans them all.
    const again = await startServer(env);
    try {
      expect((await api(again, 'GET', '/collections/bulk')).json).toMatchObject({ documents: rows.length, index: { documents: rows.length, tombstones: 0 } });
      const all = await api(again, 'POST', '/search', { collection: 'bulk', query: 'lorem', top_k: 1 });
      expect((all.json.stats as { documents_scanned: number }).documents_scanned).toBe(rows.length);
      for (const [b, docs] of byBatch) {
        const found = await api(again, 'POST', '/search', { collection: 'bulk', query: 'lorem', top_k: 1000, rescore: false, filter: { batch: b } });
        const ids = (found.json.hits as { id: string }[]).map((h) => h.id).sort();
        expect(ids).toEqual([...docs.keys()].sort());
      }
      // It goes on ingesting where it stopped.
      expect((await api(again, 'PUT', '/collections/bulk/documents', { documents: batchDocs(next + 1) })).json).toMatchObject({ upserted: BATCH });
    } finally {
      await again.stop('SIGTERM');
    }
  });
});
