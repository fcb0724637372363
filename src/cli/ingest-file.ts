/**
 * Bulk ingest of a JSON Lines file into a collection, in batches, with progress reports.
 * Used by `qembed ingest` (into the database directly, or through a running server) and by
 * evaluations that need a corpus in a collection.
 *
 * Each line is a BEIR corpus record `{"_id", "title", "text", "metadata"}` (the text indexed is
 * `title + " " + text` when the title is not empty, as BEIR's dense retrieval evaluations do;
 * see src/datasets/beir.ts)
 * or a plain `{"id", "text", "metadata"}`, either of them with a `vector` (the document's
 * float32 embedding, an array of numbers; the text is then optional). Vectors can also come from
 * a NumPy `.npy` file of float32 rows (N x dimension, C order) with their ids in a text file, one
 * a line. Resuming is free: a document already stored with the same text (or vector) is not
 * written again (see SearchService.upsertDocuments), so running the same ingest again only
 * reads the input and compares hashes.
 */
import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { DatasetError, documentText, parseDocumentLine } from '../datasets/beir.js';
import type { DocumentInput, SearchService, UpsertOptions, UpsertResult } from '../search/search-service.js';

/** Where batches go: the service in this process, or a server over HTTP. */
export interface DocumentSink {
  /** Makes sure the collection exists (creating it when `create`), or throws a clear error. */
  prepare(collection: string, create: boolean): Promise<void>;
  upsert(collection: string, documents: DocumentInput[], options?: UpsertOptions): Promise<UpsertResult>;
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
  /** The model the input's vectors come from (fingerprint or name); needed when it has vectors. */
  model?: string;
  /** For a `.npy` file of vectors: the file of their ids, one a line, in row order. */
  ids?: string;
  onProgress?: (p: IngestProgress) => void;
}

/** The document a JSONL record stands for (BEIR corpus or plain, with or without a vector), or an error naming the line. */
export function parseRecord(line: string, where: string): DocumentInput {
  if (line.includes('"vector"')) {
    const raw = JSON.parse(line) as Record<string, unknown>;
    if (raw.vector !== undefined) return parseVectorRecord(raw, where);
  }
  const doc = parseDocumentLine(line, where);
  const text = documentText(doc);
  if (text.length === 0) throw new DatasetError(`${where}: document "${doc.id}" has an empty text`);
  return { id: doc.id, text, ...(doc.metadata ? { metadata: doc.metadata } : {}) };
}

function parseVectorRecord(raw: Record<string, unknown>, where: string): DocumentInput {
  const id = raw._id ?? raw.id;
  if (typeof id !== 'string' && typeof id !== 'number') throw new DatasetError(`${where}: missing "_id" (or "id")`);
  const vector = raw.vector;
  if (!Array.isArray(vector) || !vector.every((x) => typeof x === 'number')) throw new DatasetError(`${where}: "vector" must be an array of numbers`);
  const metadata = raw.metadata;
  if (metadata !== undefined && metadata !== null && (typeof metadata !== 'object' || Array.isArray(metadata))) throw new DatasetError(`${where}: "metadata" must be an object`);
  const title = typeof raw.title === 'string' ? raw.title : '';
  const text = typeof raw.text === 'string' ? documentText({ title, text: raw.text }) : undefined;
  return {
    id: String(id),
    vector: Float32Array.from(vector as number[]),
    ...(text ? { text } : {}),
    ...(metadata ? { metadata: metadata as Record<string, unknown> } : {}),
  };
}

/** The shape of a NumPy `.npy` file of float32 rows, and where its data starts. */
export function readNpyHeader(file: string): { rows: number; dimension: number; offset: number } {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(4096);
    const n = readSync(fd, head, 0, head.length, 0);
    if (n < 10 || head.toString('latin1', 0, 6) !== '\x93NUMPY') throw new DatasetError(`${file}: not a NumPy .npy file`);
    const major = head[6]!;
    const headerLength = major === 1 ? head.readUInt16LE(8) : head.readUInt32LE(8);
    const start = major === 1 ? 10 : 12;
    const header = head.toString('latin1', start, start + headerLength);
    const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
    const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
    const shape = /'shape':\s*\((\d+),\s*(\d+)\)/.exec(header);
    if (descr !== '<f4' || fortran !== 'False' || !shape) {
      throw new DatasetError(`${file}: expected little-endian float32 rows in C order, shape (N, dimension); the header says ${header.trim()}`);
    }
    return { rows: Number(shape[1]), dimension: Number(shape[2]), offset: start + headerLength };
  } finally {
    closeSync(fd);
  }
}

/** Documents of a `.npy` file of vectors with their ids (one a line in `idsFile`), in row order. */
export async function* readNpyDocuments(file: string, idsFile: string): AsyncGenerator<DocumentInput> {
  const { rows, dimension, offset } = readNpyHeader(file);
  const ids = createInterface({ input: createReadStream(idsFile, 'utf8'), crlfDelay: Infinity })[Symbol.asyncIterator]();
  const rowBytes = dimension * 4;
  const data = createReadStream(file, { start: offset, highWaterMark: Math.max(1, Math.floor((1 << 20) / rowBytes)) * rowBytes });
  let pending: Buffer = Buffer.alloc(0);
  let row = 0;
  for await (const chunk of data as AsyncIterable<Buffer>) {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let at = 0;
    for (; at + rowBytes <= pending.length; at += rowBytes, row++) {
      const id = await ids.next();
      if (id.done || id.value.trim() === '') throw new DatasetError(`${idsFile}: has fewer ids than ${file} has rows (${rows})`);
      const vector = new Float32Array(dimension);
      new Uint8Array(vector.buffer).set(pending.subarray(at, at + rowBytes));
      yield { id: id.value.trim(), vector };
    }
    pending = pending.subarray(at);
  }
  if (row !== rows) throw new DatasetError(`${file}: ${row} rows read, the header says ${rows}`);
  if (!(await ids.next()).done) throw new DatasetError(`${idsFile}: has more ids than ${file} has rows (${rows})`);
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
  const npy = file.endsWith('.npy');
  if (npy && !options.ids) throw new DatasetError(`${file}: a .npy file of vectors needs --ids FILE (their ids, one a line)`);
  const total = npy ? readNpyHeader(file).rows : await countDocuments(file);
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
    const p = sink.upsert(options.collection, batch, { model: options.model }).then(
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
  for await (const doc of npy ? readNpyDocuments(file, options.ids!) : readDocuments(file)) {
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
    upsert: (collection, documents, options) => service.upsertDocuments(collection, documents, options),
  };
}
