/**
 * Every `qembed` command against PostgreSQL (QEMBED_DATABASE_URL): they compose the service as
 * the server does (src/composition.ts), so ingest writes to that database (and nothing to the
 * data folder's SQLite file), check reads it, and eval runs its pipeline through it, answering
 * exactly as on SQLite in memory.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EvalReport } from '../../src/eval/report.js';
import { FIXTURE_BUNDLE } from '../helpers/app.js';
import { makeBeirDataset } from '../helpers/beir.js';
import { runQembed } from '../helpers/cli.js';
import { postgresBin, postgresNotice, type PostgresServer, startPostgres } from '../helpers/postgres.js';

postgresNotice('the qembed commands against PostgreSQL (test/postgres/cli.test.ts)');

const work = mkdtempSync(path.join(tmpdir(), 'qembed-cli-pg-'));
let server: PostgresServer | undefined;
beforeAll(async () => {
  if (postgresBin) server = await startPostgres();
}, 60_000);
afterAll(() => {
  server?.destroy();
  rmSync(work, { recursive: true, force: true });
});

const lastJson = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;

async function sql<T>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text)).rows as T[];
  } finally {
    await client.end();
  }
}

describe.runIf(postgresBin)('qembed commands with QEMBED_DATABASE_URL', () => {
  it('ingest writes to PostgreSQL, not to the data folder, and check reads it back', async () => {
    const url = server!.database('cli_ingest');
    const dataDir = path.join(work, 'data');
    const env = { QEMBED_MODEL_DIR: FIXTURE_BUNDLE, QEMBED_DATABASE_URL: url, QEMBED_DATA_DIR: dataDir };
    const corpus = path.join(work, 'corpus.jsonl');
    writeFileSync(corpus, Array.from({ length: 150 }, (_, i) => JSON.stringify({ _id: `p${i}`, text: `passage ${i} about ${i % 7} things`, metadata: { part: i % 3 } })).join('\n'));

    const ingest = await runQembed(['ingest', '--collection', 'pg', '--create', '--batch-size', '40', corpus], env);
    expect(ingest.code, ingest.stderr).toBe(0);
    expect(lastJson(ingest.stdout)).toMatchObject({ collection: 'pg', documents: 150, upserted: 150 });
    const [row] = await sql<{ n: number }>(url, "SELECT count(*)::int AS n FROM documents d JOIN collections c ON c.id = d.collection_id WHERE c.name = 'pg'");
    expect(row!.n).toBe(150);
    expect(existsSync(path.join(dataDir, 'qembed.sqlite'))).toBe(false);

    const again = await runQembed(['ingest', '--collection', 'pg', corpus], env);
    expect(lastJson(again.stdout)).toMatchObject({ documents: 150, upserted: 0, unchanged: 150 });

    const check = await runQembed(['check', '--reencode'], env);
    expect(check.code, check.stderr).toBe(0);
    expect(lastJson(check.stdout)).toMatchObject({ collection: 'pg', documents: 150, indexed: 150, problems: [] });

    // A stored hash that no longer matches its text is a problem check finds in PostgreSQL's rows.
    await sql(url, "UPDATE documents SET text_sha256 = 'tampered' WHERE doc_id = 'p7'");
    const tampered = await runQembed(['check', '--collection', 'pg'], env);
    expect(tampered.code).toBe(1);
    expect(JSON.stringify(lastJson(tampered.stdout).problems)).toMatch(/p7/);
  });

  it('eval runs through PostgreSQL, answers exactly as on SQLite in memory, and leaves no collection behind', async () => {
    const url = server!.database('cli_eval');
    const dataset = makeBeirDataset();
    const args = (out: string) => ['eval', '--dataset', dataset, '--bundle', FIXTURE_BUNDLE, '--multipliers', '1,4', '--out', out];
    const onPg = await runQembed(args(path.join(work, 'pg.json')), { QEMBED_DATABASE_URL: url, QEMBED_DATA_DIR: path.join(work, 'eval-data') });
    expect(onPg.code, onPg.stderr).toBe(0);
    const inMemory = await runQembed(args(path.join(work, 'memory.json')), { QEMBED_DATA_DIR: path.join(work, 'eval-data') });
    expect(inMemory.code, inMemory.stderr).toBe(0);
    const results = (file: string) => {
      const r = JSON.parse(readFileSync(path.join(work, file), 'utf8')) as EvalReport;
      return { results: r.results, first_stage: r.first_stage };
    };
    // Same codes, same integer first stage, same rescoring arithmetic: identical figures.
    expect(results('pg.json')).toEqual(results('memory.json'));
    // It really ran there: PostgreSQL's rowids moved on, and its temporary collection is gone.
    const [seq] = await sql<{ n: number }>(url, "SELECT coalesce(max(seq), 0)::int AS n FROM changes");
    expect(seq!.n).toBeGreaterThanOrEqual(60);
    expect(await sql(url, 'SELECT name FROM collections')).toEqual([]);
  });
});
