import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { cpuSignature, currentCpu } from '../../src/encoder/cpu.js';
import { createEncoder } from '../../src/encoder/encoder.js';
import { CHOICE_FILE, type CandidateRecord, fastest, modelDirForTools, readChoice, resolveServedModel } from '../../src/models/encoder-choice.js';
import { bundleCopy, recalibratedCopy } from '../helpers/bundles.js';

const config = loadConfig({}, { intraOpThreads: 1 });
let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

function modelsDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'qembed-choice-'));
  dirs.push(dir);
  return dir;
}

/** A copy of the fixture in `into` with a changed manifest, its fingerprint recomputed as the worker would. */
const variant = (into: string, name: string, change: (m: Record<string, any>) => void): string =>
  bundleCopy((m) => change(m as unknown as Record<string, any>), { parent: into, name });

const resolve = (models: string, candidates: string[], extra: Partial<Parameters<typeof resolveServedModel>[0]> = {}) =>
  resolveServedModel({
    modelDir: 'auto',
    modelsDir: models,
    candidates: candidates.join(','),
    threads: 1,
    encoderOptions: config,
    createEncoder,
    boundFingerprints: () => new Set(),
    ...extra,
  });

describe('QEMBED_MODEL_DIR=auto', () => {
  it('measures the candidates, serves an eligible one and records the figures; a missing candidate is skipped', async () => {
    const models = modelsDir();
    const float32 = variant(models, 'default', () => {});
    // The same graph calibrated otherwise: eligible too, so both are timed.
    const other = recalibratedCopy(models, 'other');
    const served = await resolve(models, [float32, path.join(models, 'default-int8'), other]);
    expect(served.chosenBy).toBe('measurement');
    const record = readChoice(models)!;
    // The figures say which processor they came from (this one)…
    expect(record.cpu).toEqual(currentCpu());
    expect(record.cpu_signature).toBe(cpuSignature(currentCpu()));
    // …each eligible candidate was timed, and the one served is the faster by those figures.
    const eligible = record.candidates.filter((c) => c.eligible);
    expect(eligible.map((c) => c.dir).sort()).toEqual(['default', 'other']);
    for (const c of eligible) {
      expect(c.texts_per_second!.calls_of_1).toBeGreaterThan(0);
      expect(c.texts_per_second!.calls_of_32).toBeGreaterThan(0);
      expect(c.agreement!.mean_cosine).toBeCloseTo(1, 6);
    }
    const faster = fastest(record.candidates)!;
    expect(record.chosen.dir).toBe(faster.dir);
    expect(served.dir).toBe(path.join(models, faster.dir));
    expect(record.candidates.find((c) => c.dir === 'default-int8')).toMatchObject({ eligible: false, problem: 'missing', texts_per_second: null });
  });

  it('keeps the recorded choice on the same machine and measures again on another processor', async () => {
    const models = modelsDir();
    const float32 = variant(models, 'default', () => {});
    await resolve(models, [float32]);
    const first = readChoice(models)!;
    const again = await resolve(models, [float32], { measure: () => Promise.reject(new Error('must not measure')) });
    expect(again.record!.measured_at).toBe(first.measured_at);
    writeFileSync(path.join(models, CHOICE_FILE), JSON.stringify({ ...first, cpu_signature: 'x64 | another CPU | 2 cpus | avx2' }));
    let measured = false;
    await resolve(models, [float32], {
      measure: async () => {
        measured = true;
        return first.candidates;
      },
    });
    expect(measured).toBe(true);
  });

  it('does not serve a candidate whose embeddings disagree with the float32 encoder', async () => {
    const models = modelsDir();
    const float32 = variant(models, 'default', () => {});
    // Same graph, another document prompt: its embeddings differ, as a broken int8 graph's would.
    const broken = variant(models, 'broken-int8', (m) => {
      m.weights = { precision: 'int8', method: 'per-token' };
      // Long enough to dominate the tiny model's mean pooling.
      m.prompts.document = 'zebra quantum marmalade harbour violin glacier '.repeat(12);
      m.prompts.query = m.prompts.document;
    });
    const served = await resolve(models, [float32, broken]);
    expect(served.dir).toBe(float32);
    const rejected = readChoice(models)!.candidates.find((c) => c.dir === 'broken-int8')!;
    expect(rejected.eligible).toBe(false);
    expect(rejected.problem).toMatch(/agrees with the float32 encoder below the bound/);
  });

  it('keeps an earlier choice that collections are bound to, and says which candidate measured faster', async () => {
    const models = modelsDir();
    const a = variant(models, 'a', () => {});
    const b = variant(models, 'b', (m) => {
      m.weights = { precision: 'int8' };
    });
    const fa = JSON.parse(readFileSync(path.join(a, 'manifest.json'), 'utf8')).fingerprint;
    const fb = JSON.parse(readFileSync(path.join(b, 'manifest.json'), 'utf8')).fingerprint;
    const figures = (aSpeed: number, bSpeed: number): CandidateRecord[] => [
      { dir: 'a', fingerprint: fa, weights: 'float32', texts_per_second: { calls_of_1: 1, calls_of_32: aSpeed }, agreement: null, eligible: true },
      { dir: 'b', fingerprint: fb, weights: 'int8', texts_per_second: { calls_of_1: 1, calls_of_32: bSpeed }, agreement: null, eligible: true },
    ];
    const first = await resolve(models, [a, b], { measure: async () => figures(100, 50) });
    expect(first.dir).toBe(a);
    const record = readChoice(models)!;
    writeFileSync(path.join(models, CHOICE_FILE), JSON.stringify({ ...record, cpu_signature: 'another' }));
    const kept = await resolve(models, [a, b], { measure: async () => figures(100, 180), boundFingerprints: () => new Set([fa]) });
    expect(kept.dir).toBe(a);
    expect(kept.record!.kept!.faster).toEqual({ dir: 'b', fingerprint: fb, ratio: 1.8 });
    writeFileSync(path.join(models, CHOICE_FILE), JSON.stringify({ ...readChoice(models)!, cpu_signature: 'a third' }));
    const switched = await resolve(models, [a, b], { measure: async () => figures(100, 180) });
    expect(switched.dir).toBe(b);
  });

  it('tools use the recorded choice, and a named folder as is', async () => {
    const models = modelsDir();
    const float32 = variant(models, 'default', () => {});
    expect(modelDirForTools({ modelDir: '/some/bundle', modelsDir: models, encoderCandidates: '' })).toBe('/some/bundle');
    expect(modelDirForTools({ modelDir: 'auto', modelsDir: models, encoderCandidates: float32 })).toBe(float32);
    await resolve(models, [float32]);
    expect(modelDirForTools({ modelDir: 'auto', modelsDir: models, encoderCandidates: '' })).toBe(float32);
  });
});

describe('fastest', () => {
  const c = (dir: string, speed: number | null, eligible = true): CandidateRecord => ({
    dir,
    fingerprint: dir,
    weights: 'float32',
    texts_per_second: speed === null ? null : { calls_of_1: 1, calls_of_32: speed },
    agreement: null,
    eligible,
  });
  it('picks the eligible candidate with the most texts per second at calls of 32', () => {
    expect(fastest([c('a', 80), c('b', 140), c('c', 300, false)])!.dir).toBe('b');
    expect(fastest([c('a', null)])!.dir).toBe('a');
    expect(fastest([c('a', 10, false)])).toBeUndefined();
  });
});
