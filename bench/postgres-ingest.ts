/**
 * One API process's share of bench:postgres's ingest: writes COUNT documents with random
 * codes (the values do not change the work) into COLLECTION through the PostgreSQL store, in
 * batches, and prints the seconds it took as JSON. bench/postgres.ts runs one, then two at once.
 *
 *   tsx bench/postgres-ingest.ts URL COLLECTION FIRST COUNT BATCH
 */
import { createHash } from 'node:crypto';
import { openPostgresStore } from '../src/store/postgres/postgres-store.js';
import type { DocumentWrite } from '../src/store/store.js';
import { xorshift32 } from '../test/helpers/random.js';

const [url, collection, first, count, batchSize] = process.argv.slice(2);
const store = openPostgresStore(url!);
const c = store.getCollection(collection!);
if (!c) throw new Error(`no collection ${collection}`);
const next = xorshift32(Number(first) + 1);
const t = performance.now();
for (let start = Number(first); start < Number(first) + Number(count); start += Number(batchSize)) {
  const batch: DocumentWrite[] = [];
  for (let j = start; j < Math.min(Number(first) + Number(count), start + Number(batchSize)); j++) {
    const text = `synthetic passage ${j}`;
    batch.push({
      docId: `d${j}`,
      text,
      metadata: '{}',
      textSha256: createHash('sha256').update(text).digest('hex'),
      binaryCode: Uint8Array.from({ length: c.dimension / 8 }, () => next() & 255),
      int8Code: Int8Array.from({ length: c.dimension }, () => (next() & 255) - 128),
    });
  }
  store.writeBatch(c.id, batch, []);
}
console.log(JSON.stringify({ seconds: (performance.now() - t) / 1000 }));
await store.close();
