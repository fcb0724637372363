/**
 * The contracts between the service and the worker (contracts/): the committed JSON Schema
 * files are what src/contracts/ declares, and the service's readers hold to them.
 */
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { contractFiles, contractsDir } from '../../src/contracts/write.js';
import { readManifest } from '../../src/encoder/manifest.js';
import { buildJobSpec } from '../../src/jobs/job-spec.js';
import { FIXTURE_BUNDLE } from '../helpers/app.js';
import { bundleCopy } from '../helpers/bundles.js';

/** A validator of a committed contract file, as the worker reads it (not the TypeScript object). */
const committed = (name: string) => new Ajv({ strict: false }).compile(JSON.parse(readFileSync(path.join(contractsDir, name), 'utf8')) as object);

describe('contracts/', () => {
  it('holds what src/contracts/ declares (run `npm run contracts` after changing a contract)', () => {
    for (const [name, text] of Object.entries(contractFiles())) expect(readFileSync(path.join(contractsDir, name), 'utf8'), name).toBe(text);
  });

  it('the fixture bundle meets the committed manifest schema, and a manifest that lacks a field does not', () => {
    const manifest = JSON.parse(readFileSync(path.join(FIXTURE_BUNDLE, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    const check = committed('manifest.schema.json');
    expect(check(manifest)).toBe(true);
    delete manifest.created_by;
    expect(check(manifest)).toBe(false);
  });

  it('the service reads a manifest through the same contract: every problem named', () => {
    const dir = bundleCopy(
      (m) => {
        delete (m as Partial<typeof m>).created_by;
        (m as { pooling: string }).pooling = 'max';
      },
      { refingerprint: false },
    );
    expect(() => readManifest(dir)).toThrow(/invalid manifest\.json: .*"created_by" is missing.*"pooling" must be one of "mean", "cls", "lasttoken"/);
  });

  it('a job spec the service builds meets the committed job-spec schema the worker checks', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'qembed-datasets-'));
    mkdirSync(path.join(root, 'corpus-a'));
    writeFileSync(path.join(root, 'corpus-a', 'corpus.jsonl'), '{"_id": "1", "text": "a"}\n');
    const spec = buildJobSpec({ dataset: 'corpus-a' }, { datasetsRoot: root, baseModel: { fingerprint: '0123456789abcdef', dir: FIXTURE_BUNDLE, name: 'tiny' } });
    const check = committed('train-job-spec.schema.json');
    expect(check(spec), JSON.stringify(check.errors)).toBe(true);
    expect(spec.output_name).toBe('tiny-qat-head');
    expect(check({ ...spec, output_name: 'no/slashes' })).toBe(false);
    expect(check({ ...spec, unknown_field: 1 })).toBe(false);
  });
});
