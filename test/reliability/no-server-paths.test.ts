/** Answers never show absolute server paths: bundle folders and datasets are named relatively. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { recalibratedCopy } from '../helpers/bundles.js';

const models = mkdtempSync(path.join(tmpdir(), 'qembed-models-'));
const datasets = mkdtempSync(path.join(tmpdir(), 'qembed-datasets-'));
recalibratedCopy(models, 'other');
mkdirSync(path.join(datasets, 'tiny'));
writeFileSync(path.join(datasets, 'tiny', 'corpus.jsonl'), '{"_id": "1", "text": "a passage"}\n');

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ modelsDir: models, datasetsDir: datasets });
});
afterAll(async () => {
  await t.close();
  rmSync(models, { recursive: true, force: true });
  rmSync(datasets, { recursive: true, force: true });
});

describe('answers', () => {
  it('name bundle folders relative to the models folder and jobs without server paths', async () => {
    const listed = (await t.app.inject({ method: 'GET', url: '/models' })).json();
    expect(listed.models.find((m: { name: string }) => m.name === 'other').dir).toBe('other');
    const created = await t.app.inject({ method: 'POST', url: '/train-jobs', payload: { dataset: 'tiny' } });
    expect(created.statusCode).toBe(201);
    const id = created.json().id as string;
    for (const body of [listed, created.json(), (await t.app.inject({ method: 'GET', url: `/train-jobs/${id}` })).json(), (await t.app.inject({ method: 'GET', url: '/train-jobs' })).json()]) {
      const text = JSON.stringify(body);
      expect(text).not.toContain(models);
      expect(text).not.toContain(datasets);
      expect(text).not.toContain(tmpdir());
    }
    expect(created.json().spec).toMatchObject({ dataset: 'tiny', base_model: { fingerprint: t.encoder.fingerprint } });
  });
});
