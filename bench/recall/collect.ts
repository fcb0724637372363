/**
 * The recall corpus's texts, before any encoding: its passages (gathered, filtered, the held-out
 * ones taken away) and its queries (the shared collections' judged queries, then the
 * pseudo-queries), written to `texts.jsonl` and `queries.jsonl` in the cache root in the order of
 * the rows of passages.npy and queries.npy. Their sha256s decide whether cached vectors still fit.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { holdOut } from './queries.js';
import { sharedCollections, sharedDatasetsDir } from './shared.js';
import { filterPassages, type Gathered, gatherFull, gatherSmoke } from './texts.js';

/** Held-out passages (so pseudo-queries) in a full build: the issue asks for at least 2,000. */
export const HOLD_OUT = 2500;
const SMOKE_HOLD_OUT = 40;
/** Passages of each shared collection in a smoke build. */
const SMOKE_SHARED = 150;
/** Pseudo-queries are made from these sources only: the shared collections keep all their passages. */
const HOLD_OUT_SOURCES = new Set(['wordnet', 'gcide', 'lee', 'fixtures']);

export type QueryKind = 'judged' | 'pseudo';

export interface CorpusTexts {
  passages: { id: string; source: string; text: string }[];
  queries: { id: string; kind: QueryKind; source: string; text: string; from?: string }[];
  /** sha256 of texts.jsonl and of queries.jsonl as written. */
  sha256: { passages: string; queries: string };
  dropped: { short: number; duplicates: number };
  provenance: Gathered['provenance'];
  notices: string[];
  datasetsDir: string;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** Writes `text` to `file` unless it already holds exactly that (another process may be reading it). */
function writeIfChanged(file: string, text: string, digest: string): void {
  if (existsSync(file) && sha256(readFileSync(file, 'utf8')) === digest) return;
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

const jsonl = (records: readonly object[]) => records.map((r) => `${JSON.stringify(r)}\n`).join('');

/** Gathers the texts of the full (or smoke) corpus and records them under `root`. */
export async function collectTexts(root: string, smoke: boolean, log: (m: string) => void): Promise<CorpusTexts> {
  const datasetsDir = sharedDatasetsDir();
  const shared = await sharedCollections(datasetsDir);
  const notices: string[] = [];
  if (shared.length === 0) notices.push(`no shared collections in ${datasetsDir} (set QEMBED_RECALL_DATASETS): no judged queries, and their passages are left out`);
  const gathered = smoke ? gatherSmoke(shared, SMOKE_SHARED) : gatherFull(path.join(root, 'debs'), shared, log);
  notices.push(...gathered.notices);
  const { kept, short, duplicates } = filterPassages(gathered.passages);
  const held = holdOut(kept, smoke ? SMOKE_HOLD_OUT : HOLD_OUT, HOLD_OUT_SOURCES);
  const passages = held.corpus.map(({ id, source, text }) => ({ id, source, text }));
  const queries: CorpusTexts['queries'] = [
    ...shared.flatMap((c) => c.judged.map((q) => ({ id: q.id, kind: 'judged' as const, source: c.name, text: q.text }))),
    ...held.queries.map((q) => ({ id: q.id, kind: 'pseudo' as const, source: q.source, text: q.text, from: q.from })),
  ];
  mkdirSync(root, { recursive: true });
  const passagesText = jsonl(passages);
  const queriesText = jsonl(queries);
  const digests = { passages: sha256(passagesText), queries: sha256(queriesText) };
  writeIfChanged(path.join(root, 'texts.jsonl'), passagesText, digests.passages);
  writeIfChanged(path.join(root, 'queries.jsonl'), queriesText, digests.queries);
  return { passages, queries, sha256: digests, dropped: { short, duplicates }, provenance: gathered.provenance, notices, datasetsDir };
}
