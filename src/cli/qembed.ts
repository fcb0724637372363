#!/usr/bin/env node
/**
 * The qembed command line: `qembed <command> --help`.
 *
 *   ingest   bulk-load a JSONL corpus into a collection (directly, or through a server)
 *   check    compare the in-memory indexes with the database, optionally re-encoding texts
 *   eval     retrieval quality of a model bundle on a BEIR collection, per precision
 *   quality  the recall measured on a collection, and the multiplier auto uses
 *   fit      fit a collection's first-stage transform through a server (or switch it by hand)
 *
 * Direct mode composes the service's parts in this process (composition.ts: the configured
 * database and the served model). A SQLite database is locked by whichever process opens it
 * first (see openDatabase), so direct mode refuses to run while a server holds the same data
 * folder (use `--url` to go through that server); with QEMBED_DATABASE_URL it works on the
 * PostgreSQL database beside running servers, as one more replica.
 */
import { parseArgs } from 'node:util';
import { compose } from '../composition.js';
import { processConfig } from '../config.js';
import { QembedError } from '../errors.js';
import type { DocumentInput, UpsertResult } from '../search/search-service.js';
import { type DocumentSink, ingestFile, serviceSink } from './ingest-file.js';
import { evalCommand } from './eval-command.js';
import { fitCommand } from './fit-command.js';
import { qualityCommand } from './quality-command.js';
import { progressPrinter } from './progress.js';

const USAGE = `usage: qembed <command> [options]

commands:
  ingest   load a JSONL corpus into a collection (qembed ingest --help)
  check    check that the search indexes match the database (qembed check --help)
  eval     retrieval quality per precision on a BEIR collection (qembed eval --help)
  quality  recall@10 measured on a collection's own queries (qembed quality --help)
  fit      fit a collection's first-stage transform with the worker, or switch it (qembed fit --help)
`;

const INGEST_HELP = `usage: qembed ingest --collection NAME [options] FILE.jsonl
       qembed ingest --collection NAME --model FINGERPRINT --ids IDS.txt [options] VECTORS.npy

Loads documents into a collection, in batches, with a progress bar on stderr. Each line is a
BEIR corpus record {"_id", "title", "text", "metadata"} (indexed text: title + " " + text
when the title is not empty) or {"id", "text", "metadata"}, either with an optional "vector"
(the document's float32 embedding from the collection's model, which is then stored instead of
encoding the text; the text becomes optional). A .npy file of float32 rows (N x dimension) loads
vectors alone, with their ids in --ids (one a line, in row order). Running it again resumes:
ids already stored with the same text (or vector) are not written again.

options:
  --collection NAME   collection to load into (required)
  --model FP          the model the vectors come from (fingerprint or name; required with
                      vectors: another model than the collection's is refused)
  --ids FILE          the ids of a .npy file's rows, one a line
  --create            create the collection (bound to the model in use) if it does not exist
  --batch-size N      documents per batch / transaction (default 128; at most the server's QEMBED_MAX_INPUTS)
  --concurrency N     batches in flight at once (default 2)
  --url URL           send the batches to a running server (e.g. http://127.0.0.1:8080) instead
                      of opening the database; the server encodes them
  --api-key KEY       bearer token for --url when the server has QEMBED_API_KEY set
  --data-dir DIR      data folder (default: QEMBED_DATA_DIR or ./data); direct mode only (with
                      QEMBED_DATABASE_URL set, direct mode uses that PostgreSQL database)
  --model-dir DIR     model bundle (default: what the server serves: the model activated with
                      POST /models/{fingerprint}/activate, else QEMBED_MODEL_DIR, for auto the
                      encoder it chose); direct mode only

Direct mode on SQLite needs the data folder to itself: it fails with a clear message while a
server has it open (use --url then). With QEMBED_DATABASE_URL set, direct mode writes to that
PostgreSQL database and runs beside its servers (they see each batch at their next search).`;

const CHECK_HELP = `usage: qembed check [options]

Loads every collection's index from the database as the server does at start, then checks
that the index holds exactly the database's documents with the same binary codes, that every
code has the right length, that text hashes match the texts and that the per-collection
counters match the rows. Exits 1 when a problem is found. On SQLite it needs the data folder
to itself (stop the server first); with QEMBED_DATABASE_URL set it checks that PostgreSQL
database, beside running servers.

options:
  --collection NAME   check one collection (default: all)
  --reencode          also re-encode every text with the model and compare with the stored codes
  --data-dir DIR      data folder (default: QEMBED_DATA_DIR or ./data; unused with QEMBED_DATABASE_URL)
  --model-dir DIR     model bundle for --reencode (default: what the server serves: the model
                      activated at run time, else QEMBED_MODEL_DIR or its auto choice)`;

function overrides(values: { 'data-dir'?: string | undefined; 'model-dir'?: string | undefined }) {
  return {
    ...(values['data-dir'] !== undefined && { dataDir: values['data-dir'] }),
    ...(values['model-dir'] !== undefined && { modelDir: values['model-dir'] }),
  };
}

function positiveInt(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer, got ${JSON.stringify(value)}`);
  return n;
}

class UsageError extends Error {
  override name = 'UsageError';
}

/** A sink that sends batches to a running server (retrying on 429 with its Retry-After). */
function httpSink(baseUrl: string, apiKey: string | undefined): DocumentSink {
  const base = baseUrl.replace(/\/+$/, '');
  const call = async (method: string, url: string, body?: unknown): Promise<{ status: number; json: unknown }> => {
    for (let attempt = 1; ; attempt++) {
      const res = await fetch(`${base}${url}`, {
        method,
        headers: { ...(body !== undefined && { 'content-type': 'application/json' }), ...(apiKey && { authorization: `Bearer ${apiKey}` }) },
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
      const json = (await res.json().catch(() => undefined)) as unknown;
      if (res.status === 429 && attempt < 20) {
        await new Promise((r) => setTimeout(r, 1000 * Number(res.headers.get('retry-after') ?? 1)));
        continue;
      }
      return { status: res.status, json };
    }
  };
  const fail = (what: string, r: { status: number; json: unknown }) => {
    const e = (r.json as { error?: { code: string; message: string } } | undefined)?.error;
    return new Error(`${what}: HTTP ${r.status}${e ? ` ${e.code}: ${e.message}` : ''}`);
  };
  return {
    async prepare(collection, create) {
      const name = encodeURIComponent(collection);
      const got = await call('GET', `/collections/${name}`);
      if (got.status === 200) return;
      if (got.status === 404 && create) {
        const made = await call('POST', '/collections', { name: collection });
        if (made.status === 201) return;
        throw fail(`cannot create collection "${collection}"`, made);
      }
      throw fail(`collection "${collection}"`, got);
    },
    async upsert(collection, documents: DocumentInput[], options = {}): Promise<UpsertResult> {
      // Vectors travel as base64 of their float32 bytes: exact, and a third of the JSON.
      const wire = documents.map(({ vector, ...d }) => (vector ? { ...d, vector: Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString('base64') } : d));
      const r = await call('PUT', `/collections/${encodeURIComponent(collection)}/documents`, { documents: wire, ...(options.model && { model: options.model }) });
      if (r.status !== 200) throw fail('a batch was refused', r);
      const b = r.json as { upserted: number; metadata_updated: number; unchanged: number; usage: { input_tokens: number } };
      return { upserted: b.upserted, metadataUpdated: b.metadata_updated, unchanged: b.unchanged, inputTokens: b.usage.input_tokens };
    },
  };
}

/**
 * The service's parts as the server composes them (composition.ts), over the configured
 * database: the SQLite file of the data folder, or QEMBED_DATABASE_URL's PostgreSQL. The model
 * is the one the server serves (activated at run time, else QEMBED_MODEL_DIR or its recorded
 * choice), so that a collection is never bound to a model the server would answer 409 for;
 * --model-dir names another.
 */
function openLocal(values: { 'data-dir'?: string | undefined; 'model-dir'?: string | undefined }) {
  const config = processConfig(overrides(values));
  const modelDir = values['model-dir'];
  return compose(config, { database: 'configured', model: modelDir === undefined ? 'tools' : { dir: modelDir } });
}

async function ingest(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      collection: { type: 'string' },
      create: { type: 'boolean', default: false },
      'batch-size': { type: 'string' },
      concurrency: { type: 'string' },
      url: { type: 'string' },
      'api-key': { type: 'string' },
      'data-dir': { type: 'string' },
      'model-dir': { type: 'string' },
      model: { type: 'string' },
      ids: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${INGEST_HELP}\n`);
    return 0;
  }
  if (!values.collection) throw new UsageError('--collection NAME is required');
  if (positionals.length !== 1) throw new UsageError('give exactly one FILE.jsonl');
  const file = positionals[0]!;
  if (file.endsWith('.npy') && (!values.ids || !values.model)) throw new UsageError('a .npy file of vectors needs --ids FILE and --model FINGERPRINT');
  // Vectors need no model run: larger batches make fewer transactions.
  const batchSize = positiveInt(values['batch-size'], 'batch-size', file.endsWith('.npy') ? 2048 : 128);
  const concurrency = positiveInt(values.concurrency, 'concurrency', 2);
  const printer = progressPrinter();
  const run = (sink: DocumentSink) =>
    ingestFile(sink, file, { collection: values.collection!, create: values.create, batchSize, concurrency, model: values.model, ids: values.ids, onProgress: (p) => printer.update(p) });

  let result;
  if (values.url) {
    result = await run(httpSink(values.url, values['api-key']));
  } else {
    const local = await openLocal(values);
    try {
      result = await run(serviceSink(local.search));
    } finally {
      await local.close();
    }
  }
  printer.end(result);
  process.stdout.write(
    `${JSON.stringify({ collection: values.collection, documents: result.done, upserted: result.upserted, metadata_updated: result.metadataUpdated, unchanged: result.unchanged, seconds: Math.round(result.elapsedMs) / 1000 })}\n`,
  );
  return 0;
}

async function check(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      collection: { type: 'string' },
      reencode: { type: 'boolean', default: false },
      'data-dir': { type: 'string' },
      'model-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${CHECK_HELP}\n`);
    return 0;
  }
  // The model too, even without --reencode: a collection's description says whether its codes are the served model's.
  const local = await openLocal(values);
  let problems = 0;
  try {
    const names = values.collection ? [values.collection] : local.search.listCollections().map((c) => c.name);
    for (const name of names) {
      const report = await local.search.check(name, { reencode: values.reencode });
      problems += report.problems.length;
      process.stdout.write(`${JSON.stringify(report)}\n`);
    }
  } finally {
    await local.close();
  }
  return problems === 0 ? 0 : 1;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'ingest':
        return await ingest(rest);
      case 'check':
        return await check(rest);
      case 'eval':
        return await evalCommand(rest, (m) => new UsageError(m));
      case 'quality':
        return await qualityCommand(rest, (m) => new UsageError(m));
      case 'fit':
        return await fitCommand(rest, (m) => new UsageError(m));
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (e) {
    const err = e as Error;
    if (err instanceof UsageError || (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      process.stderr.write(`qembed: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    process.stderr.write(`\nqembed ${command}: ${err instanceof QembedError ? `${err.code}: ` : ''}${err.message}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
