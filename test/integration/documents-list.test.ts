/**
 * GET /collections/{name}/documents through the real app: pages in the order documents were
 * first written, a cursor that stays right while documents are written and deleted between
 * pages, the search filter's semantics and errors, and the bad cursors and limits.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorOf, startTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ maxInputs: 64 });
});
afterAll(async () => t.close());

interface Page {
  documents: { id: string; text: string | null; metadata: Record<string, unknown>; updated_at: string }[];
  next: string | null;
  total: number;
}

const put = async (collection: string, documents: object[]) => {
  const res = await t.app.inject({ method: 'PUT', url: `/collections/${collection}/documents`, payload: { documents } });
  expect(res.statusCode, res.body).toBe(200);
};
const list = (collection: string, query: Record<string, string | number | object> = {}) => {
  const params = new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, typeof v === 'object' ? JSON.stringify(v) : String(v)]));
  return t.app.inject({ method: 'GET', url: `/collections/${collection}/documents?${params}` });
};
const page = async (collection: string, query: Record<string, string | number | object> = {}): Promise<Page> => {
  const res = await list(collection, query);
  expect(res.statusCode, res.body).toBe(200);
  return res.json() as Page;
};
/** Every page from the first, `limit` at a time: the ids in order, and the totals the pages said. */
async function all(collection: string, query: Record<string, string | number | object> = {}): Promise<{ ids: string[]; totals: number[] }> {
  const ids: string[] = [];
  const totals: number[] = [];
  let after: string | null = null;
  do {
    const p: Page = await page(collection, { ...query, ...(after !== null && { after }) });
    ids.push(...p.documents.map((d) => d.id));
    totals.push(p.total);
    after = p.next;
  } while (after !== null);
  return { ids, totals };
}

const docs = (ids: string[]) => ids.map((id, i) => ({ id, text: `passage ${id}`, metadata: { topic: i % 3, even: i % 2 === 0, tag: `t${i % 2}` } }));

describe('listing documents', () => {
  it('answers an empty collection with no documents, no next page and a total of 0', async () => {
    await t.app.inject({ method: 'POST', url: '/collections', payload: { name: 'empty' } });
    expect(await page('empty')).toEqual({ documents: [], next: null, total: 0 });
    expect(await page('empty', { filter: { topic: 1 } })).toEqual({ documents: [], next: null, total: 0 });
  });

  it('pages through every document once, in the order they were first written, with the stored fields', async () => {
    await t.app.inject({ method: 'POST', url: '/collections', payload: { name: 'seven' } });
    const ids = ['g', 'b', 'e', 'a', 'f', 'c', 'd'];
    await put('seven', docs(ids.slice(0, 4)));
    await put('seven', docs(ids.slice(4)).map((d, i) => ({ ...d, metadata: docs(ids)[4 + i]!.metadata })));
    const first = await page('seven', { limit: 3 });
    expect(first.documents.map((d) => d.id)).toEqual(['g', 'b', 'e']);
    expect(first.total).toBe(7);
    expect(typeof first.next).toBe('string');
    const d = first.documents[1]!;
    const one = (await t.app.inject({ method: 'GET', url: '/collections/seven/documents/b' })).json();
    expect(d).toEqual(one);
    expect(d).toMatchObject({ id: 'b', text: 'passage b', metadata: { topic: 1, even: false, tag: 't1' } });
    expect(await all('seven', { limit: 3 })).toEqual({ ids, totals: [7, 7, 7] });
    // A page that ends exactly at the last document says there is none after it.
    expect(await all('seven', { limit: 7 })).toEqual({ ids, totals: [7] });
    expect(await all('seven')).toEqual({ ids, totals: [7] });
  });

  it('keeps its place while documents are written and deleted between pages', async () => {
    await t.app.inject({ method: 'POST', url: '/collections', payload: { name: 'moving' } });
    await put('moving', docs(['d0', 'd1', 'd2', 'd3', 'd4', 'd5', 'd6', 'd7']));
    const first = await page('moving', { limit: 3 });
    expect(first.documents.map((d) => d.id)).toEqual(['d0', 'd1', 'd2']);
    // Between the pages: a document already seen and the next one in line are deleted, a later
    // one is rewritten (it keeps its place), one already seen is rewritten, and a new one comes.
    const del = await t.app.inject({ method: 'POST', url: '/collections/moving/documents/delete', payload: { ids: ['d1', 'd3'] } });
    expect(del.json()).toEqual({ deleted: 2, not_found: [] });
    await put('moving', [{ id: 'd5', text: 'rewritten d5' }, { id: 'd0', text: 'rewritten d0' }, { id: 'new', text: 'a new one' }]);
    const second = await page('moving', { limit: 3, after: first.next! });
    expect(second.documents.map((d) => d.id)).toEqual(['d4', 'd5', 'd6']);
    expect(second.documents[1]).toMatchObject({ id: 'd5', text: 'rewritten d5' });
    expect(second.total).toBe(7);
    const third = await page('moving', { limit: 3, after: second.next! });
    expect(third.documents.map((d) => d.id)).toEqual(['d7', 'new']);
    expect(third.next).toBeNull();
    // The cursor of a page whose last document was deleted since still goes on after it.
    await t.app.inject({ method: 'DELETE', url: '/collections/moving/documents/d6' });
    expect((await page('moving', { limit: 3, after: second.next! })).documents.map((d) => d.id)).toEqual(['d7', 'new']);
    const afterD6 = await page('moving', { limit: 2, after: first.next! });
    expect(afterD6.documents.map((d) => d.id)).toEqual(['d4', 'd5']);
    await t.app.inject({ method: 'DELETE', url: '/collections/moving/documents/d5' });
    expect(await page('moving', { after: afterD6.next! })).toMatchObject({ documents: [{ id: 'd7' }, { id: 'new' }], next: null, total: 5 });
  });

  it('filters on metadata as search does: every key must match, of the same JSON type; total counts the matches', async () => {
    await t.app.inject({ method: 'POST', url: '/collections', payload: { name: 'filtered' } });
    const ids = Array.from({ length: 20 }, (_, i) => `f${String(i).padStart(2, '0')}`);
    await put('filtered', docs(ids));
    const topic1 = ids.filter((_, i) => i % 3 === 1);
    expect(await all('filtered', { filter: { topic: 1 }, limit: 2 })).toEqual({ ids: topic1, totals: [7, 7, 7, 7] });
    const both = ids.filter((_, i) => i % 3 === 1 && i % 2 === 0);
    expect(both).toHaveLength(3);
    expect(await all('filtered', { filter: { topic: 1, even: true }, limit: 2 })).toEqual({ ids: both, totals: [3, 3] });
    // Types are kept: "1" is not 1, 1 is not true.
    expect(await page('filtered', { filter: { topic: '1' } })).toEqual({ documents: [], next: null, total: 0 });
    expect(await page('filtered', { filter: { even: 1 } })).toEqual({ documents: [], next: null, total: 0 });
    expect((await page('filtered', { filter: { tag: 't0' } })).total).toBe(10);
    // An empty filter filters nothing; an unknown key matches nothing.
    expect((await page('filtered', { filter: {} })).total).toBe(20);
    expect((await page('filtered', { filter: { nope: null } })).total).toBe(0);
    // A key that could name a prototype is only a key.
    const proto = await t.app.inject({ method: 'GET', url: `/collections/filtered/documents?filter=${encodeURIComponent('{"__proto__": "x"}')}` });
    expect(proto.json()).toEqual({ documents: [], next: null, total: 0 });
  });

  it('shows a document given as a vector without text with text null', async () => {
    await t.app.inject({ method: 'POST', url: '/collections', payload: { name: 'vectors' } });
    const res = await t.app.inject({
      method: 'PUT',
      url: '/collections/vectors/documents',
      payload: { documents: [{ id: 'v', vector: Array.from({ length: t.encoder.dimension }, (_, i) => Math.sin(i + 1)) }], model: t.encoder.fingerprint },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect((await page('vectors')).documents).toEqual([expect.objectContaining({ id: 'v', text: null, metadata: {} })]);
  });

  it('refuses bad cursors, limits and filters with their codes', async () => {
    await t.app.inject({ method: 'POST', url: '/collections', payload: { name: 'other' } });
    await put('other', docs(['o1', 'o2']));
    const cursor = (await page('other', { limit: 1 })).next!;
    const refused = async (status: number, code: string, collection: string, query: Record<string, string | number | object>) => {
      const res = await list(collection, query);
      expect(res.statusCode, res.body).toBe(status);
      return errorOf(res);
    };
    expect((await refused(400, 'QEMBED_INVALID_CURSOR', 'seven', { after: cursor })).message).toMatch(/another collection/);
    expect((await refused(400, 'QEMBED_INVALID_CURSOR', 'other', { after: 'not-a-cursor' })).code).toBe('QEMBED_INVALID_CURSOR');
    for (const after of ['', 'a=b', `${cursor}=`, 'x'.repeat(45), Buffer.from('1:-2').toString('base64url'), Buffer.from('01:2').toString('base64url'), Buffer.from('1:99999999999').toString('base64url')]) {
      expect((await list('other', { after })).json(), after).toMatchObject({ error: { code: 'QEMBED_INVALID_CURSOR' } });
    }
    for (const limit of [0, 201, 1.5, 'ten']) expect((await refused(400, 'QEMBED_INVALID_REQUEST', 'other', { limit })).message).toMatch(/limit/);
    expect((await page('other', { limit: 200 })).documents).toHaveLength(2);
    for (const filter of ['{"topic": 1', '[1]', '"topic"', 'null', '{"topic": {"$in": [1]}}', JSON.stringify(Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, i]))), '{"a\\"b": 1}']) {
      const res = await t.app.inject({ method: 'GET', url: `/collections/other/documents?filter=${encodeURIComponent(filter)}` });
      expect({ filter, status: res.statusCode, code: errorOf(res).code }).toEqual({ filter, status: 400, code: 'QEMBED_INVALID_FILTER' });
    }
    await refused(400, 'QEMBED_INVALID_REQUEST', 'other', { offset: 10 });
    await refused(404, 'QEMBED_COLLECTION_NOT_FOUND', 'nope', {});
    // A cursor of a collection deleted and created again under its name is refused, not read.
    await t.app.inject({ method: 'DELETE', url: '/collections/other' });
    await t.app.inject({ method: 'POST', url: '/collections', payload: { name: 'other' } });
    await refused(400, 'QEMBED_INVALID_CURSOR', 'other', { after: cursor });
  });
});
