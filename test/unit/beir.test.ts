import { readFileSync } from 'node:fs';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DatasetError, documentText, loadBeirDataset, loadQrels } from '../../src/datasets/beir.js';

function dataset(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'qembed-beir-'));
  mkdirSync(path.join(dir, 'qrels'));
  for (const [name, content] of Object.entries(files)) writeFileSync(path.join(dir, name), content);
  return dir;
}

const corpus = '{"_id": "d1", "title": "", "text": "one"}\n{"_id": "d2", "title": "Two", "text": "two", "metadata": {"k": 1}}\n';
const queries = '{"_id": "q1", "text": "first?"}\n{"_id": "q2", "text": "second?", "metadata": {}}\n';

describe('BEIR loader', () => {
  it('reads qrels without a header (msmarco-5k style)', async () => {
    const d = await loadBeirDataset(dataset({ 'corpus.jsonl': corpus, 'queries.jsonl': queries, 'qrels/test.tsv': 'q1\td1\t2\nq1\td9\t1\n' }));
    expect(d.corpus.map((c) => c.id)).toEqual(['d1', 'd2']);
    expect(d.queries.get('q2')).toBe('second?');
    expect([...d.qrels.get('q1')!]).toEqual([['d1', 2], ['d9', 1]]);
  });

  it('reads qrels with the query-id corpus-id score header (business-reports style)', () => {
    const dir = dataset({ 'qrels/test.tsv': 'query-id\tcorpus-id\tscore\nq1\td2\t1\n' });
    expect([...loadQrels(path.join(dir, 'qrels/test.tsv')).get('q1')!]).toEqual([['d2', 1]]);
  });

  it('embeds title + " " + text when there is a title', async () => {
    const d = await loadBeirDataset(dataset({ 'corpus.jsonl': corpus, 'queries.jsonl': queries, 'qrels/test.tsv': '' }));
    expect(d.corpus.map(documentText)).toEqual(['one', 'Two two']);
    expect(d.corpus[1]!.metadata).toEqual({ k: 1 });
  });

  it('names the file and line of a malformed line', async () => {
    const dir = dataset({ 'corpus.jsonl': '{"_id": "d1", "text": "ok"}\n{"_id": "d2", "text": 3}\n', 'queries.jsonl': queries, 'qrels/test.tsv': '' });
    await expect(loadBeirDataset(dir)).rejects.toThrow(/corpus\.jsonl:2: "text" must be a string/);
    const bad = dataset({ 'qrels/test.tsv': 'q1 d1\n' });
    expect(() => loadQrels(path.join(bad, 'qrels/test.tsv'))).toThrow(DatasetError);
  });

  it('refuses duplicate document ids and missing files', async () => {
    const dup = dataset({ 'corpus.jsonl': '{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n', 'queries.jsonl': queries, 'qrels/test.tsv': '' });
    await expect(loadBeirDataset(dup)).rejects.toThrow(/duplicate document id "d1"/);
    await expect(loadBeirDataset(dataset({}))).rejects.toThrow(/corpus\.jsonl: not found/);
  });

  it('builds document texts exactly as the worker does (test/fixtures/document-text-cases.json)', () => {
    const cases = JSON.parse(readFileSync(new URL('../fixtures/document-text-cases.json', import.meta.url), 'utf8')) as { title: string | null; text: string; expected: string }[];
    for (const c of cases) expect(documentText({ title: c.title ?? undefined, text: c.text })).toBe(c.expected);
  });
});
