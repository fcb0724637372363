/** A small BEIR collection written to a temporary folder, for the evaluation's tests. */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const words = ['vector', 'binary', 'search', 'index', 'query', 'model', 'token', 'batch', 'rescore', 'memory', 'latency', 'corpus'];

/** A small BEIR collection: 60 documents, 12 queries, 8 of them judged. */
export function makeBeirDataset(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'qembed-eval-'));
  mkdirSync(path.join(dir, 'qrels'));
  const docs = Array.from({ length: 60 }, (_, i) => ({ _id: `d${i}`, title: i % 4 === 0 ? `Title ${i}` : '', text: `${words[i % 12]} ${words[(i * 5) % 12]} ${words[(i * 7) % 12]} document ${i}`, metadata: {} }));
  writeFileSync(path.join(dir, 'corpus.jsonl'), docs.map((d) => JSON.stringify(d)).join('\n'));
  writeFileSync(path.join(dir, 'queries.jsonl'), Array.from({ length: 12 }, (_, i) => JSON.stringify({ _id: `q${i}`, text: `${words[i]} ${words[(i * 5) % 12]}` })).join('\n'));
  const qrels = ['query-id\tcorpus-id\tscore', ...Array.from({ length: 8 }, (_, i) => [`q${i}\td${i}\t2`, `q${i}\td${i + 12}\t1`]).flat(), 'q0\tnot-in-corpus\t1'];
  writeFileSync(path.join(dir, 'qrels', 'test.tsv'), qrels.join('\n'));
  return dir;
}

