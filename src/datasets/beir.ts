/**
 * BEIR-format test collections: corpus.jsonl (_id, title, text, metadata), queries.jsonl
 * (_id, text) and qrels/test.tsv (query-id, corpus-id, score; with or without a header line).
 * Errors name the file and line.
 */
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';

export interface BeirDocument {
  id: string;
  title: string;
  text: string;
  metadata: Record<string, unknown> | undefined;
}

/** query id → (document id → graded relevance) */
export type Qrels = Map<string, Map<string, number>>;

export class DatasetError extends Error {
  override name = 'DatasetError';
}

/**
 * The text a document is embedded from: BEIR's convention, `title + " " + text` when the title
 * is not empty (as BEIR's dense-retrieval evaluation does), else the text alone.
 */
export function documentText(doc: { title?: string; text: string }): string {
  const title = doc.title?.trim();
  return title ? `${title} ${doc.text}` : doc.text;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses one corpus line: BEIR (`_id`, `title`, `text`, `metadata`) or plain (`id`, `text`, `metadata`). */
export function parseDocumentLine(line: string, where: string): BeirDocument {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch (e) {
    throw new DatasetError(`${where}: not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(raw)) throw new DatasetError(`${where}: expected a JSON object`);
  const id = raw._id ?? raw.id;
  if (typeof id !== 'string' && typeof id !== 'number') throw new DatasetError(`${where}: missing "_id" (or "id")`);
  if (typeof raw.text !== 'string') throw new DatasetError(`${where}: "text" must be a string`);
  if (raw.title !== undefined && raw.title !== null && typeof raw.title !== 'string') throw new DatasetError(`${where}: "title" must be a string`);
  if (raw.metadata !== undefined && raw.metadata !== null && !isObject(raw.metadata)) throw new DatasetError(`${where}: "metadata" must be an object`);
  return {
    id: String(id),
    title: typeof raw.title === 'string' ? raw.title : '',
    text: raw.text,
    metadata: isObject(raw.metadata) ? raw.metadata : undefined,
  };
}

/** Streams the documents of a corpus file with their line numbers. */
export async function* readCorpus(file: string): AsyncGenerator<BeirDocument & { line: number }> {
  if (!existsSync(file)) throw new DatasetError(`${file}: not found`);
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (line.trim() === '') continue;
    yield { ...parseDocumentLine(line, `${file}:${n}`), line: n };
  }
}

export async function loadCorpus(file: string): Promise<BeirDocument[]> {
  const docs: BeirDocument[] = [];
  const seen = new Set<string>();
  for await (const { line, ...doc } of readCorpus(file)) {
    if (seen.has(doc.id)) throw new DatasetError(`${file}:${line}: duplicate document id ${JSON.stringify(doc.id)}`);
    seen.add(doc.id);
    docs.push(doc);
  }
  return docs;
}

export function loadQueries(file: string): Map<string, string> {
  if (!existsSync(file)) throw new DatasetError(`${file}: not found`);
  const queries = new Map<string, string>();
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (line.trim() === '') return;
      const doc = parseDocumentLine(line, `${file}:${i + 1}`);
      queries.set(doc.id, doc.text);
    });
  return queries;
}

/** Reads a qrels TSV with or without the `query-id corpus-id score` header. */
export function loadQrels(file: string): Qrels {
  if (!existsSync(file)) throw new DatasetError(`${file}: not found`);
  const qrels: Qrels = new Map();
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      const fields = line.trim().split(/\t| +/);
      if (fields.length === 1 && fields[0] === '') return;
      if (i === 0 && fields[0] === 'query-id') return;
      if (fields.length !== 3) throw new DatasetError(`${file}:${i + 1}: expected query-id, corpus-id and score separated by tabs`);
      const [qid, docId, score] = fields as [string, string, string];
      const grade = Number(score);
      if (!Number.isInteger(grade)) throw new DatasetError(`${file}:${i + 1}: score ${JSON.stringify(score)} is not an integer`);
      if (!qrels.has(qid)) qrels.set(qid, new Map());
      qrels.get(qid)!.set(docId, grade);
    });
  return qrels;
}

export interface BeirDataset {
  name: string;
  dir: string;
  corpus: BeirDocument[];
  queries: Map<string, string>;
  qrels: Qrels;
}

export async function loadBeirDataset(dir: string, split = 'test'): Promise<BeirDataset> {
  const abs = path.resolve(dir);
  const corpus = await loadCorpus(path.join(abs, 'corpus.jsonl'));
  const queries = loadQueries(path.join(abs, 'queries.jsonl'));
  const qrels = loadQrels(path.join(abs, 'qrels', `${split}.tsv`));
  return { name: path.basename(abs), dir: abs, corpus, queries, qrels };
}
