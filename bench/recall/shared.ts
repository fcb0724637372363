/**
 * The shared BEIR collections (../shared/datasets/*, or QEMBED_RECALL_DATASETS): their passages
 * join the recall corpus, and their judged queries (those with at least one judgment in
 * qrels/test.tsv, as the standard metrics count them) join its queries.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { documentText, loadBeirDataset } from '../../src/datasets/beir.js';
import { projectRoot } from '../../src/paths.js';
import type { Entry } from './entry.js';

export interface SharedCollection {
  name: string;
  dir: string;
  documents: Entry[];
  judged: { id: string; text: string }[];
}

/** Where the shared collections are looked for. */
export function sharedDatasetsDir(): string {
  return path.resolve(process.env.QEMBED_RECALL_DATASETS || path.join(projectRoot, '..', 'shared', 'datasets'));
}

/** Every collection folder (holding a corpus.jsonl) under `dir`, by name; none when `dir` is absent. */
export async function sharedCollections(dir: string): Promise<SharedCollection[]> {
  if (!existsSync(dir)) return [];
  const names = readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(path.join(dir, d.name, 'corpus.jsonl')))
    .map((d) => d.name)
    .sort();
  const collections: SharedCollection[] = [];
  for (const name of names) {
    const data = await loadBeirDataset(path.join(dir, name));
    collections.push({
      name,
      dir: data.dir,
      documents: data.corpus.map((d) => ({ id: `${name}:${d.id}`, head: '', body: documentText(d) })),
      judged: [...data.queries].filter(([id]) => data.qrels.has(id)).map(([id, text]) => ({ id: `${name}:${id}`, text })),
    });
  }
  return collections;
}
