/**
 * Slow clients cannot hold a connection: a request whose body stalls is cut with 408 and the
 * error envelope once QEMBED_REQUEST_TIMEOUT_MS has passed, and so are headers that never end.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURE_BUNDLE } from '../helpers/app.js';
import { type ServerProcess, startServer } from '../helpers/server-process.js';

const dataDir = mkdtempSync(path.join(tmpdir(), 'qembed-data-'));
let server: ServerProcess;
beforeAll(async () => {
  server = await startServer({
    QEMBED_MODEL_DIR: FIXTURE_BUNDLE,
    QEMBED_DATA_DIR: dataDir,
    QEMBED_INTRA_OP_THREADS: '1',
    QEMBED_REQUEST_TIMEOUT_MS: '1500',
    QEMBED_HEADERS_TIMEOUT_MS: '1000',
    QEMBED_LOG_LEVEL: 'warn',
  });
});
afterAll(async () => {
  await server.stop('SIGTERM');
  rmSync(dataDir, { recursive: true, force: true });
});

/** Sends `data` and keeps the socket open; resolves with what the server answered and when it hung up. */
function stall(data: string): Promise<{ answer: string; ms: number }> {
  const { port } = new URL(server.url);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    let answer = '';
    const socket = connect(Number(port), '127.0.0.1', () => socket.write(data));
    socket.on('data', (chunk) => (answer += chunk.toString()));
    socket.on('close', () => resolve({ answer, ms: Date.now() - started }));
    socket.on('error', reject);
    setTimeout(() => {
      socket.destroy();
      reject(new Error('the server kept the stalled connection open for 15 s'));
    }, 15_000).unref();
  });
}

describe('timeouts', () => {
  it('cuts a request whose body stalls, with 408 QEMBED_REQUEST_TIMEOUT', async () => {
    const { answer, ms } = await stall('POST /encode HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"inputs": ');
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).error.code).toBe('QEMBED_REQUEST_TIMEOUT');
    expect(ms).toBeGreaterThanOrEqual(1000);
  });

  it('cuts headers that never end', async () => {
    const { answer } = await stall('GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
  });

  it('still answers a normal request', async () => {
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  });
});
