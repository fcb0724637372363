/**
 * A full disk, simulated with SQLite's max_page_count: writes answer 507 QEMBED_STORAGE_FULL
 * and change nothing, later writes are refused before their texts are encoded, GET /health says
 * "degraded" while it lasts, searches keep working, and everything works again once there is
 * room; nothing acknowledged is lost.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorOf, startTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
  await t.app.inject({ method: 'POST', url: '/collections', payload: { name: 'c' } });
});
afterAll(async () => t.close());

const put = (ids: string[], text = (id: string) => `a fairly long passage number ${id} `.repeat(40)) =>
  t.app.inject({ method: 'PUT', url: '/collections/c/documents', payload: { documents: ids.map((id) => ({ id, text: text(id) })) } });

describe('a full disk', () => {
  it('answers 507 with a stable code, refuses later writes before encoding them, and recovers', async () => {
    expect((await put(['kept1', 'kept2'])).statusCode).toBe(200);
    const pages = Number(t.db.pragma('page_count', { simple: true }));
    t.db.pragma(`max_page_count = ${pages + 2}`);

    let refused;
    for (let i = 0; i < 50; i++) {
      const res = await put(Array.from({ length: 16 }, (_, k) => `n${i}-${k}`));
      if (res.statusCode !== 200) {
        refused = res;
        break;
      }
    }
    expect(refused?.statusCode).toBe(507);
    expect(errorOf(refused!).code).toBe('QEMBED_STORAGE_FULL');
    const stored = (await t.app.inject({ method: 'GET', url: '/collections/c' })).json().documents as number;

    // The next write is refused before its texts reach the model.
    const texts = t.encoder.batchStats().texts;
    const again = await put(['later']);
    expect(again.statusCode).toBe(507);
    expect(t.encoder.batchStats().texts).toBe(texts);

    const health = await t.app.inject({ method: 'GET', url: '/health' });
    expect(health.statusCode).toBe(200);
    expect(health.json()).toMatchObject({ status: 'degraded', storage: { full: true } });
    expect(health.json().problems.join(' ')).toMatch(/storage is full/);
    const search = await t.app.inject({ method: 'POST', url: '/search', payload: { collection: 'c', query: 'passage', top_k: 3 } });
    expect(search.statusCode).toBe(200);
    expect((await t.app.inject({ method: 'GET', url: '/collections/c' })).json().documents).toBe(stored);

    // Room again: writes and health recover, and everything acknowledged is still there.
    t.db.pragma('max_page_count = 1073741823');
    expect((await put(['after'])).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'GET', url: '/health' })).json()).toMatchObject({ status: 'ok', storage: { full: false } });
    for (const id of ['kept1', 'kept2', 'after']) {
      expect((await t.app.inject({ method: 'GET', url: `/collections/c/documents/${id}` })).statusCode).toBe(200);
    }
    expect((await t.app.inject({ method: 'GET', url: '/collections/c' })).json().documents).toBe(stored + 1);
  });
});
