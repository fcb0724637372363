/**
 * Bulk ingest of a JSON Lines file into a collection, in batches, with progress reports.
 * Used by `qembed ingest` (into the database directly, or through a running server) and by
 * evaluations that need a corpus in a collection.
 *
 * Each line is a BEIR corpus record `{"_id", "title", "text", "metadata"}` (the text indexed is
 * `title + " " + text` when the title is not empty, as BEIR's dense retrieval evaluations do;
 * see src/datasets/beir.ts)
 * or a plain `{"id", "text", "metadata"}`. Resuming is free: a document already stored with
 * the same text is not re-encoded (see SearchService.upsertDocuments), so running the same
 * ingest again only reads the file and compares hashes.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { DatasetError, documentText, parseDocumentLine } from '../datasets/beir.js';
import type { DocumentInput, SearchService, UpsertResult } from '../search/search-service.js';

/** Where batches go: the service in this process, or a server over HTTP. */
export interface DocumentSink {
  /** Makes sure the collection exists (creating it when `create`), or throws a clear error. */
  prepare(collection: string, create: boolean): Promise<void>;
  upsert(collection: string, documents: DocumentInput[]): Promise<UpsertResult>;
}

export interface IngestProgress {
  /** Documents handled (written, updated or found unchanged). */
  done: number;
  /** Documents in the file (known after a first counting pass). */
  total: number;
  upserted: number;
  unchanged: number;
  metadataUpdated: number;
  elapsedMs: number;
}

export interface IngestOptions {
  collection: string;
  /** Create the collection if it does not exist. */
  create?: boolean;
  /** Documents per request / transaction. */
  batchSize?: number;
  /** Batches in flight at once, so the model encodes one while another is written. */
  concurrency?: number;
  onProgress?: (p: IngestProgress) => void;
}

/** The document a JSONL record stands for (BEIR corpus or plain), or an error naming the line. */
export function parseRecord(line: string, where: string): DocumentInput {
  const doc = parseDocumentLine(line, where);
  const text = documentText(doc);
  if (text.length === 0) throw new DatasetError(`${where}: document "${doc.id}" has an empty text`);
  return { id: doc.id, text, ...(doc.metadata ? { metadata: doc.metadata } : {}) };
}

/** Documents of a JSONL file in order; blank lines are skipped. */
export async function* readDocuments(file: string): AsyncGenerator<DocumentInput> {
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (line.trim() === '') continue;
    yield parseRecord(line, `${file}:${n}`);
  }
}

/** Non-blank lines of a file: the total for the progress bar. */
export async function countDocuments(file: string): Promise<number> {
  let count = 0;
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  for await (const line of lines) if (line.trim() !== '') count++;
  return count;
}

/** Ingests `file` into `options.collection` through `sink`; resolves with the final counts. */
export async function ingestFile(sink: DocumentSink, file: string, options: IngestOptions): Promise<IngestProgress> {
  const batchSize = options.batchSize ?? 128;
  const concurrency = Math.max(1, options.concurrency ?? 2);
  const total = await countDocuments(file);
  await sink.prepare(options.collection, options.create ?? false);
  const started = performance.now();
  const progress: IngestProgress = { done: 0, total, upserted: 0, unchanged: 0, metadataUpdated: 0, elapsedMs: 0 };
  const report = () => {
    progress.elapsedMs = performance.now() - started;
    options.onProgress?.({ ...progress });
  };
  report();

  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  const send = (batch: DocumentInput[]) => {
    const p = sink.upsert(options.collection, batch).then(
      (r) => {
        progress.done += batch.length;
        progress.upserted += r.upserted;
        progress.unchanged += r.unchanged;
        progress.metadataUpdated += r.metadataUpdated;
        report();
      },
      (e: unknown) => {
        failure ??= e;
      },
    );
    const tracked = p.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  };

  let batch: DocumentInput[] = [];
  let ids = new Set<string>();
  for await (const doc of readDocuments(file)) {
    if (failure) break;
    // A batch holds each id once. A repeated id starts the next batch once every batch before
    // it is written, so the later line wins.
    const repeated = ids.has(doc.id);
    if (repeated || batch.length === batchSize) {
      send(batch);
      batch = [];
      ids = new Set();
      while (inFlight.size >= (repeated ? 1 : concurrency)) await Promise.race(inFlight);
    }
    batch.push(doc);
    ids.add(doc.id);
  }
  if (batch.length > 0 && !failure) send(batch);
  await Promise.all(inFlight);
  if (failure) throw failure;
  report();
  return progress;
}

/** A sink writing into a SearchService in this process. */
export function serviceSink(service: SearchService): DocumentSink {
  return {
    async prepare(collection, create) {
      if (create && !service.hasCollection(collection)) service.createCollection(collection);
      service.getCollection(collection); // 404 with a clear message when it does not exist
    },
    upsert: (collection, documents) => service.upsertDocuments(collection, documents),
  };
}
