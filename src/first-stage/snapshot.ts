/**
 * Snapshots of the in-memory first stage, so that a start reads each collection's packed codes
 * in one go instead of row by row from SQLite (about 4 s per million documents). A snapshot is
 * only ever used when it is provably the index the database would build:
 *
 * - its header names the collection, its code length, its document count and the collection's
 *   write **generation** (bumped by every transaction that changes the collection's codes), all
 *   of which must equal the database's;
 * - a CRC-32 over the rowids and codes must match (a torn or damaged file);
 * - it is written to a temporary file, flushed, then renamed over the old one, so a crash leaves
 *   the old snapshot or the new one, never half of one.
 *
 * Anything else (missing, stale, damaged) is ignored: the index is built from the rows as before
 * and a fresh snapshot written. Layout: `QEMBEDIX` (8 bytes), header length (u32 LE), header
 * JSON, then rowids (u32 LE each), then the codes back to back.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';

const MAGIC = 'QEMBEDIX';
const FORMAT = 'qembed.index-snapshot/v1';

export interface SnapshotKey {
  collectionId: number;
  generation: number;
  codeBytes: number;
  count: number;
}

export interface SnapshotData {
  rowids: Uint32Array;
  codes: Uint8Array;
}

export const snapshotFile = (dir: string, collectionId: number) => path.join(dir, `collection-${collectionId}.snapshot`);

const checksum = (data: SnapshotData) => crc32(new Uint8Array(data.codes.buffer, data.codes.byteOffset, data.codes.byteLength), crc32(new Uint8Array(data.rowids.buffer, data.rowids.byteOffset, data.rowids.byteLength)));

/** Writes the snapshot of one collection's index (temporary file, flush, rename). */
export function writeSnapshot(dir: string, key: SnapshotKey, data: SnapshotData): void {
  if (data.rowids.length !== key.count || data.codes.length !== key.count * key.codeBytes) throw new Error('snapshot data does not match its key');
  mkdirSync(dir, { recursive: true });
  const file = snapshotFile(dir, key.collectionId);
  const tmp = `${file}.${process.pid}.tmp`;
  const header = Buffer.from(JSON.stringify({ format: FORMAT, ...key, crc32: checksum(data) }), 'utf8');
  const prefix = Buffer.alloc(12);
  prefix.write(MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(header.length, 8);
  const fd = openSync(tmp, 'w');
  try {
    for (const part of [prefix, header, new Uint8Array(data.rowids.buffer, data.rowids.byteOffset, data.rowids.byteLength), data.codes]) {
      for (let at = 0; at < part.length; ) at += writeSync(fd, part, at, part.length - at);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  // Temporary files of processes killed while writing this collection's snapshot.
  const stale = `${path.basename(file)}.`;
  for (const name of readdirSync(dir)) if (name.startsWith(stale) && name.endsWith('.tmp')) rmSync(path.join(dir, name), { force: true });
}

/** The snapshot of a collection when it is exactly the index `key` describes; undefined otherwise. */
export function readSnapshot(dir: string, key: SnapshotKey): SnapshotData | undefined {
  let bytes: Buffer;
  try {
    bytes = readFileSync(snapshotFile(dir, key.collectionId));
  } catch {
    return undefined;
  }
  if (bytes.length < 12 || bytes.toString('latin1', 0, 8) !== MAGIC) return undefined;
  const headerLength = bytes.readUInt32LE(8);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(bytes.toString('utf8', 12, 12 + headerLength)) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (header.format !== FORMAT) return undefined;
  for (const k of ['collectionId', 'generation', 'codeBytes', 'count'] as const) if (header[k] !== key[k]) return undefined;
  const start = 12 + headerLength;
  if (bytes.length !== start + key.count * 4 + key.count * key.codeBytes) return undefined;
  // Copies: aligned, and owned by the index (the file buffer is released).
  const rowids = new Uint32Array(key.count);
  new Uint8Array(rowids.buffer).set(bytes.subarray(start, start + key.count * 4));
  const codes = new Uint8Array(bytes.subarray(start + key.count * 4));
  const data = { rowids, codes };
  return checksum(data) === header.crc32 ? data : undefined;
}
