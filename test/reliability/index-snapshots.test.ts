/**
 * Snapshots of the first stage: a start reads a collection's codes from its snapshot only when
 * the snapshot is exactly the database's state (same generation, count, code length, checksum);
 * a stale, torn or damaged one is ignored and the index built from the rows, and a process
 * killed while writing one never leaves a file that would be taken for valid.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createFirstStageIndex, type FirstStageIndex } from '../../src/first-stage/first-stage.js';
import { keepInStep } from '../../src/first-stage/in-step.js';
import { readSnapshot, snapshotFile, writeSnapshot } from '../../src/first-stage/snapshot.js';
import { openDatabase } from '../../src/store/database.js';
import { createSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { DocumentWrite, Store } from '../../src/store/store.js';
import { xorshift32 } from '../helpers/random.js';

const work = mkdtempSync(path.join(tmpdir(), 'qembed-snapshots-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const next = xorshift32(11);
const doc = (i: number): DocumentWrite => ({
  docId: `d${i}`,
  text: `text ${i}`,
  metadata: '{}',
  textSha256: `${i}`.padStart(64, '0'),
  binaryCode: Uint8Array.from({ length: 4 }, () => next() & 255),
  int8Code: Int8Array.from({ length: 32 }, () => (next() & 255) - 128),
});

interface Opened {
  /** Its writes kept in step with `firstStage`, as search keeps them. */
  store: Store;
  firstStage: FirstStageIndex;
  close: () => void;
}

/** Opens the database file with its first stage, as the service does. */
function open(file: string): Opened {
  const db = openDatabase({ file });
  const store = createSqliteStore(db);
  const firstStage = createFirstStageIndex(store);
  return { store: keepInStep(store, firstStage), firstStage, close: () => db.close() };
}
const entries = ({ store, firstStage }: Opened) => JSON.stringify([...firstStage.indexEntries(store.listCollections()[0]!.id)].map((e) => [e.rowid, Array.from(e.code)]));
/** A start from the file (the indexes loaded, then the process gone): where the first collection's index came from, and what it held. */
function restart(file: string): { from: string | undefined; entries: string } {
  const opened = open(file);
  try {
    opened.firstStage.loadIndexes();
    return { from: opened.firstStage.indexStats(opened.store.listCollections()[0]!.id)?.loadedFrom, entries: entries(opened) };
  } finally {
    opened.close();
  }
}

describe('index snapshots', () => {
  const file = path.join(work, 'qembed.sqlite');
  let expected = '';

  it('are written when an index is built from the rows and at shutdown, and read at the next start', () => {
    const first = open(file);
    const c = first.store.createCollection('c', 'f', 32).collection;
    first.store.writeBatch(c.id, Array.from({ length: 500 }, (_, i) => doc(i)), []);
    first.store.deleteDocuments(c.id, ['d7', 'd8']);
    expected = entries(first);
    first.firstStage.persist();
    first.close();
    expect(restart(file)).toEqual({ from: 'snapshot', entries: expected });
  });

  it('are ignored when the collection changed after them (a kill before shutdown), then rebuilt', () => {
    const killed = open(file);
    const c = killed.store.listCollections()[0]!;
    // The index is not loaded here (nothing searched): the write changes the rows only, and no
    // persist follows, as if the process were killed now.
    const [rowid] = killed.store.writeBatch(c.id, [doc(1000)], []).rowids;
    killed.close();
    const stale = restart(file);
    expect(stale.from).toBe('database');
    expected = stale.entries;
    const held = JSON.parse(expected) as [number, number[]][];
    expect(held).toHaveLength(499);
    expect(held.at(-1)![0]).toBe(rowid);
    // The rebuild wrote a fresh snapshot.
    expect(restart(file)).toEqual({ from: 'snapshot', entries: expected });
  });

  it('are ignored when torn or damaged', () => {
    const snap = snapshotFile(path.join(work, 'index-snapshots'), 1);
    const good = readFileSync(snap);
    for (const damage of [
      () => truncateSync(snap, good.length - 3),
      () => writeFileSync(snap, Buffer.concat([good.subarray(0, good.length - 1), Buffer.from([good.at(-1)! ^ 1])])),
      () => writeFileSync(snap, 'not a snapshot'),
    ]) {
      damage();
      expect(restart(file)).toEqual({ from: 'database', entries: expected });
    }
  });

  it('are never taken for valid after a kill while one is written', async () => {
    const dir = path.join(work, 'killed');
    const n = 400_000;
    const make = (seed: number) => ({ rowids: Uint32Array.from({ length: n }, (_, i) => i + 1), codes: Uint8Array.from({ length: n * 48 }, (_, i) => (i * seed) & 255) });
    writeSnapshot(dir, { collectionId: 1, generation: 1, codeBytes: 48, count: n }, make(3));
    // A child process writes generation 2 over and over; it is killed in the middle.
    const script = path.join(work, 'writer.ts');
    writeFileSync(
      script,
      `import { writeSnapshot } from ${JSON.stringify(path.resolve('src/first-stage/snapshot.ts'))};\n` +
        `const n = ${n}; const data = { rowids: Uint32Array.from({ length: n }, (_, i) => i + 1), codes: Uint8Array.from({ length: n * 48 }, (_, i) => (i * 5) & 255) };\n` +
        `process.stdout.write('ready\\n');\nfor (;;) writeSnapshot(${JSON.stringify(dir)}, { collectionId: 1, generation: 2, codeBytes: 48, count: n }, data);\n`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    await new Promise((r) => setTimeout(r, 150));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const two = readSnapshot(dir, { collectionId: 1, generation: 2, codeBytes: 48, count: n });
    const one = readSnapshot(dir, { collectionId: 1, generation: 1, codeBytes: 48, count: n });
    // Exactly one complete snapshot is there: the old one, or a whole new one.
    expect(Number(two !== undefined) + Number(one !== undefined)).toBe(1);
    if (two) expect(Buffer.from(two.codes).equals(Buffer.from(make(5).codes))).toBe(true);
    if (one) expect(Buffer.from(one.codes).equals(Buffer.from(make(3).codes))).toBe(true);
  });
});
