/** `qembed quality NAME`: from the database (measuring with --measure) and from a running server, which reads the measurements persisted. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPORTED_MULTIPLIERS } from '../../src/quality/estimate.js';
import { FIXTURE_BUNDLE } from '../helpers/app.js';
import { runQembed } from '../helpers/cli.js';
import { startServer } from '../helpers/server-process.js';

const work = mkdtempSync(path.join(tmpdir(), 'qembed-cli-quality-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const qembed = (args: string[]) => runQembed(args, { QEMBED_MODEL_DIR: FIXTURE_BUNDLE });

describe('qembed quality', () => {
  it('says nothing is measured yet, measures with --measure, and a server then shows what was persisted', async () => {
    const dataDir = path.join(work, 'data');
    const corpus = path.join(work, 'corpus.jsonl');
    const topics = ['rivers and tides', 'bread and ovens', 'engines', 'music theory', 'glass', 'maps of stars'];
    writeFileSync(corpus, Array.from({ length: 240 }, (_, i) => JSON.stringify({ _id: `p${i}`, text: `passage ${i} on ${topics[i % 6]} and ${topics[(i * 5) % 6]}` })).join('\n'));
    expect((await qembed(['ingest', '--collection', 'c', '--create', '--data-dir', dataDir, corpus])).code).toBe(0);

    const before = await qembed(['quality', 'c', '--data-dir', dataDir]);
    expect(before.code, before.stderr).toBe(0);
    expect(before.stdout).toContain('nothing measured yet (0 sampled queries');

    const measured = await qembed(['quality', 'c', '--measure', '--json', '--data-dir', dataDir]);
    expect(measured.code, measured.stderr).toBe(0);
    const q = JSON.parse(measured.stdout) as { basis: string; measured_queries: number; first_stages: Record<string, { recall_at_10: { multiplier: number }[] }> };
    expect(q).toMatchObject({ basis: 'documents', measured_queries: 100 });
    expect(q.first_stages.hamming!.recall_at_10.map((r) => r.multiplier)).toEqual(expect.arrayContaining([...REPORTED_MULTIPLIERS]));

    const table = await qembed(['quality', 'c', '--data-dir', dataDir]);
    expect(table.stdout).toContain('100 measured documents standing in for queries');
    expect(table.stdout).toMatch(/\| hamming \| \d+( \(target not met\))? \| [\d.]+ \[[\d.]+, [\d.]+\] \|/);

    const server = await startServer({ QEMBED_MODEL_DIR: FIXTURE_BUNDLE, QEMBED_DATA_DIR: dataDir, QEMBED_INTRA_OP_THREADS: '1', QEMBED_LOG_LEVEL: 'warn' });
    try {
      const viaServer = await qembed(['quality', 'c', '--json', '--url', server.url]);
      expect(viaServer.code, viaServer.stderr).toBe(0);
      expect(JSON.parse(viaServer.stdout)).toEqual(q);
      const missing = await qembed(['quality', 'nope', '--url', server.url]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain('QEMBED_COLLECTION_NOT_FOUND');
    } finally {
      await server.stop();
    }
  });

  it('refuses a missing collection and bad usage with clear messages', async () => {
    const dataDir = path.join(work, 'empty');
    const missing = await qembed(['quality', 'nope', '--data-dir', dataDir]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('QEMBED_COLLECTION_NOT_FOUND');
    const usage = await qembed(['quality', '--data-dir', dataDir]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('give exactly one collection NAME');
    const both = await qembed(['quality', 'c', '--measure', '--url', 'http://127.0.0.1:1']);
    expect(both.code).toBe(2);
  });
});
