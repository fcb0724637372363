import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRecord } from '../../src/cli/ingest-file.js';
import { FIXTURE_BUNDLE } from '../helpers/app.js';
import { runQembed } from '../helpers/cli.js';
import { xorshift32 } from '../helpers/random.js';
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

describe('qembed ingest of vectors', () => {
  const fingerprint = JSON.parse(readFileSync(path.join(FIXTURE_BUNDLE, 'manifest.json'), 'utf8')).fingerprint as string;
  const dimension = 32;
  /** Unit vectors from a fixed seed (xorshift32), row i for document v{i}. */
  const rows = (n: number) => {
    const next = xorshift32(7);
    return Array.from({ length: n }, () => {
      const v = Float32Array.from({ length: dimension }, () => next() - 0.5);
      const norm = Math.hypot(...v);
      return v.map((x) => x / norm);
    });
  };
  /** A NumPy .npy file (version 1.0) of float32 rows, written by hand as numpy.save does. */
  function writeNpy(file: string, vectors: Float32Array[]): void {
    let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${vectors.length}, ${dimension}), }`;
    header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
    const head = Buffer.alloc(10);
    head.write('\x93NUMPY', 0, 'latin1');
    head[6] = 1;
    head.writeUInt16LE(header.length, 8);
    const data = Buffer.concat(vectors.map((v) => Buffer.from(v.buffer)));
    writeFileSync(file, Buffer.concat([head, Buffer.from(header, 'latin1'), data]));
  }

  it('loads a .npy file with its ids and JSONL records with vectors, resumes, and stores the codes of those vectors', async () => {
    const dataDir = path.join(work, 'vectors');
    const vectors = rows(500);
    writeNpy(path.join(work, 'v.npy'), vectors);
    writeFileSync(path.join(work, 'ids.txt'), vectors.map((_, i) => `v${i}`).join('\n') + '\n');
    const args = ['ingest', '--collection', 'vec', '--create', '--model', fingerprint, '--ids', path.join(work, 'ids.txt'), '--batch-size', '128', '--data-dir', dataDir, path.join(work, 'v.npy')];
    const first = await qembed(args);
    expect(first.code, first.stderr).toBe(0);
    expect(lastJson(first.stdout)).toMatchObject({ documents: 500, upserted: 500 });
    const again = await qembed(args);
    expect(lastJson(again.stdout)).toMatchObject({ documents: 500, upserted: 0, unchanged: 500 });
    // JSONL records with vectors (and one with a text too) go through the same path.
    const jsonl = path.join(work, 'v.jsonl');
    writeFileSync(jsonl, vectors.slice(0, 3).map((v, i) => JSON.stringify({ id: `j${i}`, vector: Array.from(v), ...(i === 0 && { text: 'kept as is' }) })).join('\n'));
    const viaJsonl = await qembed(['ingest', '--collection', 'vec', '--model', fingerprint, '--data-dir', dataDir, jsonl]);
    expect(lastJson(viaJsonl.stdout)).toMatchObject({ documents: 3, upserted: 3 });
    // The stored codes are the quantization of those vectors: the same as the .npy rows'.
    const db = new Database(path.join(dataDir, 'qembed.sqlite'), { readonly: true });
    try {
      const code = (id: string) => (db.prepare('SELECT binary_code, int8_code FROM documents WHERE doc_id = ?').get(id) as { binary_code: Buffer; int8_code: Buffer });
      expect(code('j1')).toEqual(code('v1'));
      expect((db.prepare("SELECT text FROM documents WHERE doc_id = 'j0'").get() as { text: string }).text).toBe('kept as is');
    } finally {
      db.close();
    }
    const check = await qembed(['check', '--data-dir', dataDir]);
    expect(check.code, check.stdout).toBe(0);
  });

  it('refuses vectors of another model or a .npy without its ids, writing nothing', async () => {
    const dataDir = path.join(work, 'refused');
    writeNpy(path.join(work, 'r.npy'), rows(10));
    writeFileSync(path.join(work, 'rids.txt'), Array.from({ length: 10 }, (_, i) => `r${i}`).join('\n'));
    const other = await qembed(['ingest', '--collection', 'r', '--create', '--model', '0123456789abcdef', '--ids', path.join(work, 'rids.txt'), '--data-dir', dataDir, path.join(work, 'r.npy')]);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/come from model "0123456789abcdef"/);
    const noIds = await qembed(['ingest', '--collection', 'r', '--model', fingerprint, '--data-dir', dataDir, path.join(work, 'r.npy')]);
    expect(noIds.code).toBe(2);
    writeFileSync(path.join(work, 'short.txt'), 'r0\nr1\n');
    const fewIds = await qembed(['ingest', '--collection', 'r', '--model', fingerprint, '--ids', path.join(work, 'short.txt'), '--data-dir', dataDir, path.join(work, 'r.npy')]);
    expect(fewIds.code).toBe(1);
    expect(fewIds.stderr).toMatch(/fewer ids/);
  });
});
