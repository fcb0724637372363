/**
 * One file out of a zip archive (the gensim wheel that carries the Lee corpus), with Node's zlib
 * alone: the corpus build then needs neither `unzip` nor Python. Stored and deflated members of
 * ordinary (not zip64) archives, which is what wheels are.
 */
import { readFileSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';

const END_OF_DIRECTORY = 0x06054b50;
const DIRECTORY_ENTRY = 0x02014b50;
const LOCAL_HEADER = 0x04034b50;

/** The bytes of `member` in the zip file `archive`. */
export function readZipMember(archive: string, member: string): Buffer {
  const zip = readFileSync(archive);
  // The end-of-directory record sits in the last 22 bytes plus at most a 65,535-byte comment.
  let end = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 0xffff); i--) {
    if (zip.readUInt32LE(i) === END_OF_DIRECTORY) {
      end = i;
      break;
    }
  }
  if (end < 0) throw new Error(`${archive}: not a zip archive`);
  const entries = zip.readUInt16LE(end + 10);
  let at = zip.readUInt32LE(end + 16);
  for (let k = 0; k < entries; k++) {
    if (zip.readUInt32LE(at) !== DIRECTORY_ENTRY) throw new Error(`${archive}: damaged central directory`);
    const method = zip.readUInt16LE(at + 10);
    const compressed = zip.readUInt32LE(at + 20);
    const nameLength = zip.readUInt16LE(at + 28);
    const skip = nameLength + zip.readUInt16LE(at + 30) + zip.readUInt16LE(at + 32);
    const local = zip.readUInt32LE(at + 42);
    const name = zip.toString('utf8', at + 46, at + 46 + nameLength);
    at += 46 + skip;
    if (name !== member) continue;
    if (zip.readUInt32LE(local) !== LOCAL_HEADER) throw new Error(`${archive}: damaged entry ${member}`);
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const data = zip.subarray(start, start + compressed);
    if (method === 0) return Buffer.from(data);
    if (method === 8) return inflateRawSync(data);
    throw new Error(`${archive}: ${member} uses compression method ${method} (only stored and deflated are read)`);
  }
  throw new Error(`${archive} does not hold ${member}`);
}
