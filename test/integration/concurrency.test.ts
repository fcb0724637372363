import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { foldQuery, scoreInt8 } from '../../src/quantization/dequantize.js';
import { startTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ maxInputs: 64, queueSize: 1024 });
});
afterAll(async () => t.close());

const N = 40;
const textOf = (i: number, version: string) => `document ${i}, version ${version}: ${version === 'A' ? 'apples and oranges' : 'binary codes in memory'}`;

describe('searches during ingests', () => {
  it('never see a document whose codes are half-updated: every hit matches the codes of its own text', async () => {
    await t.app.inject({ method: 'POST', url: '/collections', payload: { name: 'live' } });
    const q = t.encoder.quantizer;
    // The codes each text must have.
    const all = [...Array(N).keys()].flatMap((i) => [textOf(i, 'A'), textOf(i, 'B')]);
    const vectors = (await t.encoder.embed(all, { inputType: 'document', truncate: true })).vectors;
    const codes = new Map(all.map((text, j) => [text, { binary: q.toUbinary(vectors[j]!), int8: q.toInt8(vectors[j]!) }]));
    const queries = (await t.encoder.embed(['apples', 'memory codes', 'version'], { inputType: 'query', truncate: true })).vectors;

    const popcount = (x: number) => {
      let n = 0;
      for (; x; x &= x - 1) n++;
      return n;
    };
    let checkedHits = 0;
    const verify = (query: Float32Array, rescore: boolean, hits: { id: string; score: number; text: string }[]) => {
      const folded = foldQuery(query, q);
      const bits = q.toUbinary(query);
      for (const h of hits) {
        const c = codes.get(h.text);
        expect(c, `hit ${h.id} has an unknown text`).toBeDefined();
        expect(h.text.startsWith(`document ${h.id.slice(4)},`)).toBe(true);
        // Rescored: the int8 code read with the text is the text's code. Not rescored: the
        // code the in-memory index compared is the text's code.
        const expected = rescore ? scoreInt8(folded, c!.int8) : 1 - (2 * c!.binary.reduce((s, x, i) => s + popcount(x ^ bits[i]!), 0)) / q.dimension;
        expect(h.score).toBe(expected);
        checkedHits++;
      }
    };

    let writing = true;
    const writer = async () => {
      for (let round = 0; round < 30; round++) {
        const documents = [...Array(N).keys()].map((i) => {
          const version = (i * 7 + round * 3) % 5 < 2 ? 'A' : 'B';
          return { id: `doc-${i}`, text: textOf(i, version), metadata: { round } };
        });
        const res = await t.app.inject({ method: 'PUT', url: '/collections/live/documents', payload: { documents } });
        expect(res.statusCode, res.body).toBe(200);
        if (round % 4 === 3) {
          const ids = [...Array(N).keys()].filter((i) => (i + round) % 6 === 0).map((i) => `doc-${i}`);
          await t.app.inject({ method: 'POST', url: '/collections/live/documents/delete', payload: { ids } });
        }
      }
      writing = false;
    };
    const reader = async (r: number) => {
      let searches = 0;
      while (writing || searches < 5) {
        const query = queries[searches % queries.length]!;
        const rescore = (searches + r) % 2 === 0;
        const res = await t.app.inject({
          method: 'POST',
          url: '/search',
          payload: { collection: 'live', vector: Array.from(query), top_k: N, rescore_multiplier: 1, rescore },
        });
        expect(res.statusCode, res.body).toBe(200);
        verify(query, rescore, (res.json() as { hits: { id: string; score: number; text: string }[] }).hits);
        searches++;
      }
      return searches;
    };
    const [, ...counts] = await Promise.all([writer(), reader(0), reader(1), reader(2)]);
    expect(counts.every((c) => c >= 5)).toBe(true);
    expect(checkedHits).toBeGreaterThan(100);
    expect((await t.search.check('live', { reencode: true })).problems).toEqual([]);
  });
});
