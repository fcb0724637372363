/**
 * The official Python SDKs against a running service: openai (default base64 and float,
 * dimensions, quantized codes, a 404), cohere's ClientV2 (every embedding type, a 400) and
 * LangChain's OpenAIEmbeddings, each compared with /encode (test/sdk/clients.py says how).
 * scripts/test installs them in their own environment (test/sdk/requirements.lock) and points
 * TEST_SDK_PYTHON at it; without it this test is skipped with a notice, and under CI it fails.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { bundleCopy, recalibratedCopy } from '../helpers/bundles.js';
import { sdkPython } from '../helpers/dependencies.js';

const python = sdkPython('the official SDKs\' tests');
const script = fileURLToPath(new URL('../sdk/clients.py', import.meta.url));

describe.runIf(python)('the official Python SDKs', () => {
  let t: TestApp;
  let url: string;
  // Bundles that are not served beside the served one, as in the models folder scripts/test
  // builds: GET /v1/models must not offer them (clients take the first model listed).
  const models = mkdtempSync(path.join(tmpdir(), 'qembed-sdk-models-'));
  beforeAll(async () => {
    recalibratedCopy(models, 'a-float32');
    t = await startTestApp({ maxInputs: 8, modelsDir: models, modelDir: bundleCopy(() => {}, { parent: models, name: 'b-served' }) });
    url = await t.app.listen({ port: 0, host: '127.0.0.1' });
  });
  afterAll(async () => {
    await t.close();
    rmSync(models, { recursive: true, force: true });
  });

  it('embed through openai, cohere and langchain exactly as /encode does', async () => {
    // Asynchronous: the service answers on this process's event loop while Python runs.
    const child = spawn(python!, [script], { env: { ...process.env, QEMBED_URL: url, QEMBED_MODEL: t.encoder.bundle.manifest.name } });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, output).toBe(0);
    expect(output).toContain('ok cohere v2, binary byte-identical');
    expect(output).toContain('ok langchain embed_documents');
    expect(output).toContain('ok openai python, models.list().data[0] embeds');
  }, 120_000);
});
