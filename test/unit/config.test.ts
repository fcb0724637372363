import { describe, expect, it } from 'vitest';
import { ConfigError, configTableMarkdown, loadConfig } from '../../src/config.js';

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c.port).toBe(8080);
    expect(c.dataDir).toBe('./data');
    expect(c.modelDir).toBe('auto');
    expect(c.encoderCandidates).toBe('./models/default,./models/default-int8');
    expect(c.executionProvider).toBe('cpu');
    expect(c.maxInputs).toBe(256);
  });

  it('reads QEMBED_ variables with their types', () => {
    const c = loadConfig({ QEMBED_PORT: '9000', QEMBED_CUDA_FALLBACK: 'true', QEMBED_EXECUTION_PROVIDER: 'cuda' });
    expect(c.port).toBe(9000);
    expect(c.cudaFallback).toBe(true);
    expect(c.executionProvider).toBe('cuda');
  });

  it.each([
    [{ QEMBED_PORT: '80a' }, /QEMBED_PORT.*integer/],
    [{ QEMBED_PORT: '70000' }, /QEMBED_PORT.*≤ 65535/],
    [{ QEMBED_EXECUTION_PROVIDER: 'tpu' }, /one of cpu, cuda/],
    [{ QEMBED_CUDA_FALLBACK: 'maybe' }, /true or false/],
    [{ QEMBED_DATA_DIR: ' ' }, /must not be empty/],
    [{ QEMBED_MAX_INPUTS: '500', QEMBED_QUEUE_SIZE: '100' }, /QUEUE_SIZE/],
    [{ QEMBED_MAXINPUTS: '5' }, /unknown setting/],
    [{ QEMBED_DATABASE_URL: 'mysql://x@y/z' }, /PostgreSQL URL/],
    [{ QEMBED_PG_FIRST_STAGE: 'ivf' }, /one of memory, exact, hnsw/],
  ])('refuses %o', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('renders the README table from the schema', () => {
    expect(configTableMarkdown()).toMatch(/\| `QEMBED_PORT` \| `8080` \|/);
  });
});

describe('README configuration table', () => {
  it('is what src/config.ts produces (run `npm run docs:config` after changing a setting)', async () => {
    const { readFileSync } = await import('node:fs');
    const { readmeWithConfigTable } = await import('../../src/config-docs.js');
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    expect(readme).toBe(readmeWithConfigTable(readme));
  });
});
