/**
 * The consistency check (qembed check): a collection's first-stage index against its rows, the
 * rows against their invariants, and optionally the stored codes against a fresh encoding.
 */
import type { Quantizer } from '../quantization/quantize.js';
import { codeBitsOf } from '../store/store.js';
import type { Collections } from './collections.js';
import { sha256, VECTOR_DIGEST } from './documents.js';
import type { CheckReport } from './types.js';

export async function check(collections: Collections, name: string, options: { reencode?: boolean } = {}): Promise<CheckReport> {
  const { store, firstStage } = collections.deps;
  const c = collections.require(name);
  const problems: string[] = [];
  const problem = (p: string) => {
    if (problems.length < 100) problems.push(p);
  };
  // Synchronous: the index and the rows are compared at one instant.
  const counted = store.recount(c.id);
  if (counted.documents !== c.document_count) problem(`document_count is ${c.document_count} but the collection has ${counted.documents} rows`);
  if (counted.payloadBytes !== c.payload_bytes) problem(`payload_bytes is ${c.payload_bytes} but the rows hold ${counted.payloadBytes}`);
  const entries = firstStage.indexEntries(c.id);
  let indexed = 0;
  const toRecheck: { id: string; text: string; binary: Buffer; int8: Buffer }[] = [];
  let documents = 0;
  for (const d of store.iterateDocuments(c.id)) {
    documents++;
    if (d.binaryCode.length !== c.dimension / 8) problem(`document "${d.docId}": binary code of ${d.binaryCode.length} bytes, expected ${c.dimension / 8}`);
    if (d.int8Code.length !== c.dimension) problem(`document "${d.docId}": int8 code of ${d.int8Code.length} bytes, expected ${c.dimension}`);
    // Under a transform every document has its code (the switch swapped them all in; writes add theirs); under first dims none.
    if (c.transform !== null && d.firstCode?.length !== codeBitsOf(c) / 8) problem(`document "${d.docId}": no ${codeBitsOf(c)}-bit code of transform ${c.transform}`);
    if (c.transform === null && d.firstCode !== null) problem(`document "${d.docId}": a transform's code, but the collection is served with first dims`);
    const givenAsVector = d.textSha256.startsWith(VECTOR_DIGEST);
    if (!givenAsVector && sha256(d.text) !== d.textSha256) problem(`document "${d.docId}": text_sha256 does not match its text`);
    const e = entries.next();
    if (e.done) problem(`document "${d.docId}" (rowid ${d.rowid}) is missing from the index`);
    else {
      indexed++;
      if (e.value.rowid !== d.rowid) problem(`index slot holds rowid ${e.value.rowid} where the database has ${d.rowid} ("${d.docId}")`);
      else if (!Buffer.from(e.value.code).equals(d.firstCode ?? d.binaryCode.subarray(0, codeBitsOf(c) / 8))) {
        problem(`document "${d.docId}": the index holds another first-stage code than the database`);
      }
    }
    // A document given as a vector has no text to encode again: its codes are checked above only.
    if (options.reencode && !givenAsVector) toRecheck.push({ id: d.docId, text: d.text, binary: d.binaryCode, int8: d.int8Code });
  }
  for (let e = entries.next(); !e.done; e = entries.next()) {
    indexed++;
    problem(`the index holds rowid ${e.value.rowid}, which the database does not`);
  }
  const stats = firstStage.indexStats(c.id);
  if (stats && stats.documents !== indexed) problem(`the index counts ${stats.documents} documents but holds ${indexed}`);
  if (indexed !== documents) problem(`the index holds ${indexed} documents, the database ${documents}`);

  if (options.reencode && toRecheck.length > 0) {
    const encoder = collections.encoderOf(c);
    for (let i = 0; i < toRecheck.length; i += 64) {
      const batch = toRecheck.slice(i, i + 64);
      const { vectors } = await encoder.embed(
        batch.map((d) => d.text),
        { inputType: 'document', truncate: true },
      );
      batch.forEach((d, j) => {
        const why = codesMismatch(encoder.quantizer, vectors[j]!, d.binary, d.int8);
        if (why) problem(`document "${d.id}": stored codes are not the codes of its text (${why})`);
      });
    }
  }
  return { collection: name, documents, indexed, problems };
}

/**
 * Why stored codes are not the codes of `vector`, or undefined when they are. Re-encoding in
 * another batch moves values by ~1e-6, which may flip a value sitting on a bucket edge, so a
 * stored code passes when it is the code of some value within ±1e-4 of the new one.
 */
export function codesMismatch(quantizer: Quantizer, vector: Float32Array, binary: Uint8Array, int8: Int8Array | Uint8Array): string | undefined {
  const eps = 1e-4;
  const codes = new Int8Array(int8.buffer, int8.byteOffset, int8.length);
  const lo = quantizer.toInt8(vector.map((x) => x - eps));
  const hi = quantizer.toInt8(vector.map((x) => x + eps));
  for (let i = 0; i < vector.length; i++) {
    if (codes[i]! < lo[i]! || codes[i]! > hi[i]!) return `int8 dimension ${i}: stored ${codes[i]}, expected ${lo[i]}..${hi[i]}`;
    const bit = (binary[i >> 3]! >> (7 - (i & 7))) & 1;
    if (Math.abs(vector[i]!) > eps && bit !== (vector[i]! > 0 ? 1 : 0)) return `binary dimension ${i}`;
  }
  return undefined;
}
