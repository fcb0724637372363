/**
 * Float32 matrices as NumPy .npy files (format version 1.0, little-endian float32, C order, two
 * dimensions; one dimension is read as one row), so that Python (numpy.load / numpy.save) and
 * the service exchange the same files: the recall corpus's vectors, the worker's fitted
 * first-stage transforms. Only this one layout is written or accepted: anything else is
 * refused, never reinterpreted.
 */
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
const PREAMBLE = MAGIC.length + 4; // magic, version (2 bytes), header length (uint16 LE)
// numpy pads the header so that the data starts on a 64-byte boundary; a Float32Array can then
// view the data in place.
const ALIGN = 64;

export interface Matrix {
  rows: number;
  columns: number;
  /** Row-major rows × columns. */
  data: Float32Array;
}

function assertLittleEndian(): void {
  // The data is written and read as the platform's float32 bytes.
  if (endianness() !== 'LE') throw new Error('npy: only little-endian platforms are supported');
}

function header(rows: number, columns: number, descr = '<f4'): Buffer {
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${rows}, ${columns}), }`;
  const unpadded = PREAMBLE + dict.length + 1; // + the closing newline
  const padded = Math.ceil(unpadded / ALIGN) * ALIGN;
  const text = `${dict}${' '.repeat(padded - unpadded)}\n`;
  const buf = Buffer.alloc(PREAMBLE + text.length);
  MAGIC.copy(buf, 0);
  buf[6] = 1;
  buf[7] = 0;
  buf.writeUInt16LE(text.length, 8);
  buf.write(text, PREAMBLE, 'latin1');
  return buf;
}

/** Writes `m` to `file` as a (rows, columns) '<f4' array. */
export function writeNpy(file: string, m: Matrix): void {
  assertLittleEndian();
  if (m.data.length !== m.rows * m.columns) throw new Error(`npy: ${m.data.length} values do not make ${m.rows} x ${m.columns}`);
  writeArray(file, header(m.rows, m.columns), new Uint8Array(m.data.buffer, m.data.byteOffset, m.data.byteLength));
}

/** Writes int8 codes (rows × columns, row-major) to `file` as a '|i1' array: a collection's stored int8 codes, for the worker. */
export function writeInt8Npy(file: string, rows: number, columns: number, data: Int8Array): void {
  if (data.length !== rows * columns) throw new Error(`npy: ${data.length} values do not make ${rows} x ${columns}`);
  writeArray(file, header(rows, columns, '|i1'), new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}

function writeArray(file: string, head: Buffer, bytes: Uint8Array): void {
  const fd = openSync(file, 'w');
  try {
    writeSync(fd, head);
    // In slices: one writeSync of hundreds of MiB can write less than asked.
    for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, Math.min(1 << 26, bytes.length - at));
  } finally {
    closeSync(fd);
  }
}

/** Reads a (rows, columns) or (columns,) '<f4' C-order array written by writeNpy or numpy.save. */
export function readNpy(file: string): Matrix {
  assertLittleEndian();
  const buf = readFileSync(file);
  if (buf.length < PREAMBLE || !buf.subarray(0, MAGIC.length).equals(MAGIC)) throw new Error(`${file}: not a .npy file`);
  if (buf[6] !== 1) throw new Error(`${file}: .npy format version ${buf[6]}.${buf[7]}; only 1.0 is read`);
  const length = buf.readUInt16LE(8);
  const text = buf.toString('latin1', PREAMBLE, PREAMBLE + length);
  const descr = /'descr':\s*'([^']*)'/.exec(text)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(text)?.[1];
  const shape = /'shape':\s*\((\d+),\s*(\d+),?\s*\)/.exec(text) ?? /'shape':\s*\((\d+),\s*\)/.exec(text);
  if (descr !== '<f4' || fortran !== 'False' || !shape) throw new Error(`${file}: expected a one- or two-dimensional '<f4' C-order array, header ${text.trim()}`);
  const rows = shape[2] === undefined ? 1 : Number(shape[1]);
  const columns = Number(shape[2] ?? shape[1]);
  const start = PREAMBLE + length;
  if (buf.length - start !== rows * columns * 4) throw new Error(`${file}: ${buf.length - start} data bytes for a ${rows} x ${columns} float32 array`);
  const aligned = (buf.byteOffset + start) % 4 === 0;
  const data = aligned ? new Float32Array(buf.buffer, buf.byteOffset + start, rows * columns) : new Float32Array(buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + buf.length));
  return { rows, columns, data };
}
