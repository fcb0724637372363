import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRecord } from '../../src/cli/ingest-file.js';
import { FIXTURE_BUNDLE } from '../helpers/app.js';
import { runQembed } from '../helpers/cli.js';
import { startServer } from '../helpers/server-process.js';

const work = mkdtempSync(path.join(tmpdir(), 'qembed-cli-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const qembed = (args: string[]) => runQembed(args, { QEMBED_MODEL_DIR: FIXTURE_BUNDLE });

const lastJson = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;

function writeCorpus(file: string, n: number, change?: number): void {
  const lines = Array.from({ length: n }, (_, i) =>
    JSON.stringify({ _id: `p${i}`, title: i % 2 ? `Title ${i}` : '', text: `passage ${i}${i === change ? ' (edited)' : ''} about things`, metadata: { source: i % 3 } }),
  );
  writeFileSync(file, `${lines.join('\n')}\n\n`);
}

describe('BEIR records', () => {
  it('index title + " " + text, or the text alone when the title is empty; plain {id, text} works too', () => {
    expect(parseRecord('{"_id": "1", "title": "T", "text": "body", "metadata": {"a": 1}}', 'f:1')).toEqual({ id: '1', text: 'T body', metadata: { a: 1 } });
    expect(parseRecord('{"_id": "2", "title": "", "text": "body", "metadata": {}}', 'f:2')).toEqual({ id: '2', text: 'body', metadata: {} });
    expect(parseRecord('{"id": 3, "text": "plain"}', 'f:3')).toEqual({ id: '3', text: 'plain' });
    expect(() => parseRecord('{"_id": "4", "text": "x", "metadata": [1]}', 'f:4')).toThrow(/f:4: "metadata" must be an object/);
    expect(() => parseRecord('{"title": "x", "text": "y"}', 'f:5')).toThrow(/f:5: missing "_id"/);
    expect(() => parseRecord('not json', 'f:6')).toThrow(/f:6: not valid JSON/);
  });
});

describe('qembed ingest', () => {
  it('loads a BEIR corpus with a progress bar, resumes without re-encoding, and picks up edits', async () => {
    const dataDir = path.join(work, 'direct');
    const corpus = path.join(work, 'corpus.jsonl');
    writeCorpus(corpus, 300);
    const first = await qembed(['ingest', '--collection', 'beir', '--create', '--batch-size', '64', '--data-dir', dataDir, corpus]);
    expect(first.code, first.stderr).toBe(0);
    expect(lastJson(first.stdout)).toMatchObject({ collection: 'beir', documents: 300, upserted: 300, unchanged: 0 });
    expect(first.stderr).toMatch(/300\/300 docs \(100\.0%\)\s+[\d,]+ docs\/s\s+ETA/);

    const again = await qembed(['ingest', '--collection', 'beir', '--data-dir', dataDir, corpus]);
    expect(lastJson(again.stdout)).toMatchObject({ documents: 300, upserted: 0, unchanged: 300 });

    writeCorpus(corpus, 310, 5);
    const edited = await qembed(['ingest', '--collection', 'beir', '--data-dir', dataDir, corpus]);
    expect(lastJson(edited.stdout)).toMatchObject({ documents: 310, upserted: 11, unchanged: 299 });

    const check = await qembed(['check', '--reencode', '--data-dir', dataDir]);
    expect(check.code, check.stderr).toBe(0);
    expect(lastJson(check.stdout)).toMatchObject({ collection: 'beir', documents: 310, indexed: 310, problems: [] });
  });

  it('refuses a missing collection without --create, and bad lines naming file and line', async () => {
    const dataDir = path.join(work, 'errors');
    const corpus = path.join(work, 'bad.jsonl');
    writeFileSync(corpus, '{"_id": "a", "text": "fine"}\n{"_id": "b"}\n');
    const missing = await qembed(['ingest', '--collection', 'nope', '--data-dir', dataDir, corpus]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/QEMBED_COLLECTION_NOT_FOUND: collection "nope" does not exist/);
    const bad = await qembed(['ingest', '--collection', 'c', '--create', '--data-dir', dataDir, corpus]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`${corpus}:2: "text" must be a string`);
    const usage = await qembed(['ingest', corpus]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/--collection NAME is required/);
  });

  it('will not open a data folder a server holds, and goes through the server with --url', async () => {
    const dataDir = path.join(work, 'served');
    const corpus = path.join(work, 'served.jsonl');
    writeCorpus(corpus, 50);
    const server = await startServer({ QEMBED_MODEL_DIR: FIXTURE_BUNDLE, QEMBED_DATA_DIR: dataDir, QEMBED_INTRA_OP_THREADS: '1', QEMBED_LOG_LEVEL: 'warn' });
    try {
      const direct = await qembed(['ingest', '--collection', 'c', '--create', '--data-dir', dataDir, corpus]);
      expect(direct.code).toBe(1);
      expect(direct.stderr).toMatch(/in use by another qembed process.*--url/s);
      const viaServer = await qembed(['ingest', '--collection', 'c', '--create', '--url', server.url, corpus]);
      expect(viaServer.code, viaServer.stderr).toBe(0);
      expect(lastJson(viaServer.stdout)).toMatchObject({ documents: 50, upserted: 50 });
      const res = await fetch(`${server.url}/collections/c`);
      expect(await res.json()).toMatchObject({ documents: 50, index: { documents: 50 } });
    } finally {
      await server.stop('SIGTERM');
    }
  });
});

describe('direct mode', () => {
  it('binds a new collection to the model the server serves: the one activated at run time, not QEMBED_MODEL_DIR', async () => {
    const { bundleCopy } = await import('../helpers/bundles.js');
    const { openDatabase } = await import('../../src/store/database.js');
    const { loadBundle } = await import('../../src/encoder/bundle.js');
    const dataDir = path.join(work, 'activated');
    const activated = bundleCopy((m) => (m.calibration.max = m.calibration.max.map((x) => x + 0.05)), { parent: work, name: 'activated-bundle' });
    const db = openDatabase({ file: path.join(dataDir, 'qembed.sqlite') });
    db.prepare("INSERT INTO meta (key, value) VALUES ('active_model_dir', ?)").run(activated);
    db.close();
    const corpus = path.join(work, 'activated.jsonl');
    writeCorpus(corpus, 5);
    const run = await qembed(['ingest', '--collection', 'c', '--create', '--data-dir', dataDir, corpus]);
    expect(run.code).toBe(0);
    const check = openDatabase({ file: path.join(dataDir, 'qembed.sqlite') });
    const bound = check.prepare("SELECT fingerprint FROM collections WHERE name = 'c'").pluck(true).get();
    check.close();
    expect(bound).toBe((await loadBundle(activated)).fingerprint);
  });
});
