import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorOf, startTestApp, type TestApp } from '../helpers/app.js';
import { recalibratedCopy } from '../helpers/bundles.js';

const modelsDir = mkdtempSync(path.join(tmpdir(), 'qembed-models-'));
// Same graph, other calibration ranges: another fingerprint, other int8 codes.
const other = recalibratedCopy(modelsDir, 'tiny-recalibrated');
mkdirSync(path.join(modelsDir, 'broken'));
writeFileSync(path.join(modelsDir, 'broken', 'manifest.json'), '{"format": "qembed.bundle/v1"}');

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ modelsDir });
});
afterAll(async () => t.close());

const inject = (method: 'GET' | 'POST' | 'PUT', url: string, payload?: object) => t.app.inject({ method, url, ...(payload && { payload }) });

describe('GET /models', () => {
  it('lists the served bundle and the models folder, flagging a folder that cannot be served', async () => {
    const res = await inject('GET', '/models');
    expect(res.statusCode).toBe(200);
    const models = res.json().models as { name: string; fingerprint: string; active: boolean; loaded: boolean; problem?: string }[];
    expect(models.find((m) => m.active)?.fingerprint).toBe(t.encoder.fingerprint);
    expect(models.find((m) => m.name === 'tiny-recalibrated')).toMatchObject({ active: false, loaded: false });
    expect(models.find((m) => m.name === 'broken')?.problem).toMatch(/invalid manifest/);
  });

  it('shows the figures `qembed eval --record` kept beside a bundle, only for the fingerprint they were measured on', async () => {
    const listed = async () => ((await inject('GET', '/models')).json().models as { name: string; fingerprint: string; evaluation: unknown }[]).find((m) => m.name === 'tiny-recalibrated')!;
    const { fingerprint } = await listed();
    const datasets = { 'msmarco-5k': { 'float32_ndcg@10': 0.8, 'binary+int8@4_retention': 0.99 } };
    writeFileSync(path.join(other, 'evaluation.json'), JSON.stringify({ fingerprint: '0123456789abcdef', datasets }));
    expect((await listed()).evaluation).toBeNull();
    writeFileSync(path.join(other, 'evaluation.json'), JSON.stringify({ fingerprint, datasets }));
    expect((await listed()).evaluation).toEqual({ fingerprint, datasets });
  });
});

describe('POST /models/{fingerprint}/activate', () => {
  it('refuses an unknown or malformed fingerprint, changing nothing', async () => {
    const unknown = await inject('POST', '/models/0123456789abcdef/activate');
    expect(unknown.statusCode).toBe(404);
    expect(errorOf(unknown).code).toBe('QEMBED_MODEL_NOT_FOUND');
    const malformed = await inject('POST', '/models/not-a-fingerprint/activate');
    expect(malformed.statusCode).toBe(400);
    expect(t.registry.active().fingerprint).toBe(t.encoder.fingerprint);
  });

  it('swaps the model without dropping in-flight requests, and re-encodes collections in the background', async () => {
    expect((await inject('POST', '/collections', { name: 'docs' })).statusCode).toBe(201);
    const documents = Array.from({ length: 400 }, (_, i) => ({ id: `d${i}`, text: `document number ${i} about ${['cats', 'ships', 'tea', 'maps'][i % 4]}` }));
    for (let i = 0; i < 400; i += 200) expect((await inject('PUT', '/collections/docs/documents', { documents: documents.slice(i, i + 200) })).statusCode).toBe(200);
    const binaryHits = async () => ((await inject('POST', '/search', { collection: 'docs', query: 'tea', rescore: false })).json().hits as { id: string }[]).map((h) => h.id);
    const before = await binaryHits();
    expect(before).toHaveLength(10);
    const otherFingerprint = (await inject('GET', '/models')).json().models.find((m: { name: string }) => m.name === 'tiny-recalibrated').fingerprint as string;

    const inflight = inject('POST', '/encode', { inputs: Array.from({ length: 64 }, (_, i) => `in flight ${i} `.repeat(10)) });
    const activated = await inject('POST', `/models/${otherFingerprint}/activate`);
    expect(activated.statusCode).toBe(200);
    expect(activated.json()).toMatchObject({ previous: { fingerprint: t.encoder.fingerprint }, current: { fingerprint: otherFingerprint }, reencoding: [{ collection: 'docs', documents: 400 }] });
    expect((await inflight).statusCode).toBe(200);

    // New encodes use the new model at once.
    expect((await inject('POST', '/encode', { inputs: 'x' })).json().model.fingerprint).toBe(otherFingerprint);
    // Until the re-encoding completes, the collection is searched with its old codes and model.
    // Requests keep the model busy meanwhile: the re-encoding runs only when none waits.
    const busy = Array.from({ length: 4 }, () => inject('POST', '/encode', { inputs: Array.from({ length: 200 }, (_, i) => `busy ${i} `.repeat(20)) }));
    const during = await inject('GET', '/collections/docs');
    expect(during.json()).toMatchObject({ fingerprint: t.encoder.fingerprint, model: { state: 'stale', searchable: true } });
    expect(during.json().reencode).toMatchObject({ target_fingerprint: otherFingerprint, total: 400 });
    expect((await inject('POST', '/search', { collection: 'docs', query: 'tea' })).statusCode).toBe(200);
    for (const r of await Promise.all(busy)) expect(r.statusCode).toBe(200);
    for (let i = 0; i < 200 && (await inject('GET', '/collections/docs')).json().fingerprint !== otherFingerprint; i++) await new Promise((r) => setTimeout(r, 50));
    const after = (await inject('GET', '/collections/docs')).json();
    expect(after).toMatchObject({ fingerprint: otherFingerprint, documents: 400, reencode: null });
    const report = await t.search.check('docs', { reencode: true });
    expect(report.problems).toEqual([]);
    // Other calibration ranges change the int8 codes; the sign bits are the same graph's, so binary search agrees.
    expect(await binaryHits()).toEqual(before);
    expect((await inject('GET', '/health')).json().model.fingerprint).toBe(otherFingerprint);
  });

  it('keeps writes made during the re-encoding', async () => {
    const back = await inject('POST', `/models/${t.encoder.fingerprint}/activate`);
    expect(back.statusCode).toBe(200);
    // Write while the collection is being re-encoded back: the new documents must end up with codes of the new model.
    const extra = Array.from({ length: 10 }, (_, i) => ({ id: `late${i}`, text: `written during the switch ${i}` }));
    const write = await inject('PUT', '/collections/docs/documents', { documents: extra });
    expect(write.statusCode).toBe(200);
    await inject('PUT', '/collections/docs/documents', { documents: [{ id: 'd0', text: 'document zero, rewritten during the switch' }] });
    for (let i = 0; i < 200 && (await inject('GET', '/collections/docs')).json().fingerprint !== t.encoder.fingerprint; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await inject('GET', '/collections/docs')).json()).toMatchObject({ fingerprint: t.encoder.fingerprint, documents: 410 });
    expect((await t.search.check('docs', { reencode: true })).problems).toEqual([]);
  });
});

describe('activation during a re-encoding', () => {
  it('is refused with 409 until the running re-encoding is done, changing nothing', async () => {
    const u = await startTestApp({ modelsDir });
    try {
      await u.app.inject({ method: 'POST', url: '/collections', payload: { name: 'busy' } });
      await u.app.inject({ method: 'PUT', url: '/collections/busy/documents', payload: { documents: [{ id: 'a', text: 'alpha' }, { id: 'b', text: 'beta' }] } });
      // A re-encoding held at a gate, for a model that is not the one being activated.
      let open: () => void = () => {};
      const gate = new Promise<void>((r) => (open = r));
      const target = { ...u.encoder, fingerprint: 'fedcba9876543210', embed: async (...a: Parameters<typeof u.encoder.embed>) => (await gate, u.encoder.embed(...a)) };
      const running = u.search.reencode('busy', target);
      const otherFp = (await u.app.inject({ method: 'GET', url: '/models' })).json().models.find((m: { name: string }) => m.name === 'tiny-recalibrated').fingerprint;
      const res = await u.app.inject({ method: 'POST', url: `/models/${otherFp}/activate` });
      expect(res.statusCode).toBe(409);
      expect(errorOf(res).message).toMatch(/still being re-encoded.*"busy"/);
      expect(u.registry.active().fingerprint).toBe(u.encoder.fingerprint);
      open();
      await running;
    } finally {
      await u.close();
    }
  });
});
