/**
 * src/files/npy.ts: what it writes it reads back bit for bit, in the layout numpy.save writes
 * (version 1.0, '<f4', C order, data on a 64-byte boundary), and it refuses any other layout
 * rather than misreading it.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readNpy, writeNpy } from '../../src/files/npy.js';
import { xorshift32 } from '../helpers/random.js';

const dir = mkdtempSync(path.join(tmpdir(), 'qembed-npy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('npy', () => {
  it('round-trips a float32 matrix exactly, NaN and infinities included', () => {
    const next = xorshift32(7);
    const data = Float32Array.from({ length: 37 * 5 }, () => (next() / 2 ** 31 - 1) * 3);
    data[3] = Number.NaN;
    data[4] = Number.POSITIVE_INFINITY;
    data[5] = -0;
    const file = path.join(dir, 'm.npy');
    writeNpy(file, { rows: 37, columns: 5, data });
    const back = readNpy(file);
    expect([back.rows, back.columns]).toEqual([37, 5]);
    expect(Buffer.from(back.data.buffer, back.data.byteOffset, back.data.byteLength).equals(Buffer.from(data.buffer))).toBe(true);
  });

  it("writes numpy's version 1.0 header: magic, a '<f4' C-order dict, data 64-byte aligned", () => {
    const file = path.join(dir, 'h.npy');
    writeNpy(file, { rows: 2, columns: 3, data: new Float32Array(6) });
    const bytes = readFileSync(file);
    expect(bytes.subarray(0, 8)).toEqual(Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]));
    const headerLength = bytes.readUInt16LE(8);
    expect((10 + headerLength) % 64).toBe(0);
    expect(bytes.toString('latin1', 10, 10 + headerLength)).toMatch(/^\{'descr': '<f4', 'fortran_order': False, 'shape': \(2, 3\), \} *\n$/);
    expect(bytes.length).toBe(10 + headerLength + 6 * 4);
  });

  it("reads a one-dimensional array (numpy.save of a vector: shape (n,)) as one row", () => {
    const file = path.join(dir, 'v.npy');
    writeNpy(file, { rows: 1, columns: 3, data: Float32Array.of(1, -2, 0.5) });
    writeFileSync(file, Buffer.from(readFileSync(file, 'latin1').replace("'shape': (1, 3), ", "'shape': (3,),   "), 'latin1'));
    const back = readNpy(file);
    expect([back.rows, back.columns, [...back.data]]).toEqual([1, 3, [1, -2, 0.5]]);
  });

  it('reads an empty matrix', () => {
    const file = path.join(dir, 'e.npy');
    writeNpy(file, { rows: 0, columns: 384, data: new Float32Array(0) });
    expect(readNpy(file)).toMatchObject({ rows: 0, columns: 384 });
  });

  it('refuses other dtypes, Fortran order, a wrong size and a mismatched shape', () => {
    const file = path.join(dir, 'x.npy');
    writeNpy(file, { rows: 2, columns: 2, data: new Float32Array(4) });
    const good = readFileSync(file, 'latin1');
    for (const [what, bad] of [
      ['float64', good.replace("'<f4'", "'<f8'")],
      ['Fortran order', good.replace('False', 'True ')],
      ['missing data', good.slice(0, -4)],
    ] as const) {
      writeFileSync(file, Buffer.from(bad, 'latin1'));
      expect(() => readNpy(file), what).toThrow(/npy|expected|data bytes/);
    }
    expect(() => writeNpy(file, { rows: 3, columns: 2, data: new Float32Array(4) })).toThrow(/do not make 3 x 2/);
  });
});
