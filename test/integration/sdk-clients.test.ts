/**
 * The official Python SDKs against a running service: openai (default base64 and float,
 * dimensions, quantized codes, a 404), cohere's ClientV2 (every embedding type, a 400) and
 * LangChain's OpenAIEmbeddings, each compared with /encode (test/sdk/clients.py says how).
 * scripts/test installs them in their own environment (test/sdk/requirements.lock) and points
 * TEST_SDK_PYTHON at it; without it this test is skipped with a notice, and under CI it fails.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { sdkPython } from '../helpers/dependencies.js';

const python = sdkPython('the official SDKs\' tests');
const script = fileURLToPath(new URL('../sdk/clients.py', import.meta.url));

describe.runIf(python)('the official Python SDKs', () => {
  let t: TestApp;
  let url: string;
  beforeAll(async () => {
    t = await startTestApp({ maxInputs: 8 });
    url = await t.app.listen({ port: 0, host: '127.0.0.1' });
  });
  afterAll(async () => t.close());

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
  }, 120_000);
});
