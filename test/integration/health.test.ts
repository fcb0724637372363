import { describe, expect, it } from 'vitest';
import { startTestApp } from '../helpers/app.js';

describe('GET /health', () => {
  it('is 200 with the model, provider and queue depth when the model runs and the database writes', async () => {
    const t = await startTestApp();
    try {
      const res = await t.app.inject({ method: 'GET', url: '/health' });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body.status).toBe('ok');
      expect(body.problems).toEqual([]);
      expect(body.model.fingerprint).toBe(t.encoder.fingerprint);
      expect(body.model.dimension).toBe(t.encoder.dimension);
      expect(body.model.execution_provider).toBe('cpu');
      expect(body.queue_depth).toBe(0);
      expect(body.database).toBe('ok');
      // Every figure says which processor it came from.
      expect(body.cpu.arch).toBe(process.arch);
      expect(body.cpu.cpus).toBeGreaterThan(0);
      expect(['dot-product', 'pairwise-int16', 'unknown']).toContain(body.cpu.int8_kernel);
    } finally {
      await t.close();
    }
  });

  it('is 503 naming the problem when the database cannot be written', async () => {
    const t = await startTestApp();
    try {
      t.db.close();
      const res = await t.app.inject({ method: 'GET', url: '/health' });
      expect(res.statusCode).toBe(503);
      expect(res.json().database).toBe('unavailable');
      expect(res.json().problems.join(' ')).toMatch(/database/);
    } finally {
      await t.close();
    }
  });

  it('is 503 when the model thread is gone', async () => {
    const t = await startTestApp();
    try {
      await t.encoder.close();
      const res = await t.app.inject({ method: 'GET', url: '/health' });
      expect(res.statusCode).toBe(503);
      expect(res.json().problems.join(' ')).toMatch(/model/);
    } finally {
      await t.close();
    }
  });
});
