/**
 * scripts/install-cuda-providers, run for real into a copy of onnxruntime-node, then the model
 * thread started on that copy with QEMBED_EXECUTION_PROVIDER=cuda: without an NVIDIA driver it
 * must refuse, naming libcuda.so.1 and QEMBED_CUDA_FALLBACK; with one, it must run on the GPU.
 *
 * The wheels weigh ~1.3 GB (docs/deploy.md): this test never downloads them, it installs from the
 * cache in TEST_CUDA_WHEELS, which ./scripts/test fills once per machine
 * (`scripts/install-cuda-providers --download-only`); without it the test is skipped with a notice
 * outside CI and fails under CI (helpers/dependencies.ts).
 * The copy lives in .cache/cuda-install-test and is kept: the installer finds it installed on the
 * next run and returns at once, which is the idempotence this also checks.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { loadBundle } from '../../src/encoder/bundle.js';
import { loadError, providerDir } from '../../src/encoder/cuda-diagnosis.mjs';
import type { InitReply, ModelInit } from '../../src/encoder/model-protocol.js';
import { FIXTURE_BUNDLE } from '../helpers/app.js';
import { dependency, requirePath } from '../helpers/dependencies.js';

const root = path.resolve(import.meta.dirname, '../..');
const wheels = requirePath('the CUDA provider installer test', 'TEST_CUDA_WHEELS', 'dir', 'the cache of the locked CUDA wheels: ./scripts/test fills ~/.cache/qembed/cuda-wheels with scripts/install-cuda-providers --download-only and sets it');
const tree = path.join(root, '.cache', 'cuda-install-test');

/** Every wheel of the lock is in the cache (by name and version; the installer checks hashes). */
function missingWheels(wheels: string): string | undefined {
  const files = readdirSync(wheels).map((f) => f.toLowerCase());
  const lock = readFileSync(path.join(root, 'scripts', 'cuda-providers.lock'), 'utf8');
  const missing = [...lock.matchAll(/^([A-Za-z0-9_.-]+)==(\S+)/gm)]
    .filter(([, name, version]) => !files.some((f) => f.startsWith(`${name!.replace(/[-.]/g, '_').toLowerCase()}-${version}-`)))
    .map(([, name, version]) => `${name}==${version}`);
  return missing.length > 0 ? `TEST_CUDA_WHEELS=${wheels} lacks ${missing.join(', ')}` : undefined;
}
const runs = wheels !== undefined && dependency('the CUDA provider installer test', missingWheels(wheels));

/** Whether this host has an NVIDIA driver: the dynamic loader finds libcuda.so.1. */
const hasDriver = () => loadError('libcuda.so.1') === null;

/** onnxruntime-node and its one runtime dependency, without other platforms' binaries, and the model thread beside them. */
function prepareTree(): string {
  const source = path.dirname(path.dirname(path.dirname(path.dirname(providerDir()))));
  const target = path.join(tree, 'node_modules', 'onnxruntime-node');
  const version = (dir: string) => JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')).version as string;
  if (!existsSync(target) || version(target) !== version(source)) {
    rmSync(tree, { recursive: true, force: true });
    const skip = new Set(['darwin', 'win32'].map((p) => path.join(source, 'bin', 'napi-v6', p)));
    cpSync(source, target, { recursive: true, filter: (p) => !skip.has(p) });
    cpSync(path.join(source, '..', 'onnxruntime-common'), path.join(tree, 'node_modules', 'onnxruntime-common'), { recursive: true });
  }
  // The thread resolves onnxruntime-node from where it lies, so it runs from the copy.
  mkdirSync(path.join(tree, 'encoder'), { recursive: true });
  for (const f of ['model-thread.mjs', 'cuda-diagnosis.mjs']) {
    copyFileSync(path.join(root, 'src', 'encoder', f), path.join(tree, 'encoder', f));
  }
  return path.join(tree, 'encoder', 'model-thread.mjs');
}

/** Runs the installer into the copy from the cache alone; returns what it logged. */
function runInstaller(): string {
  const script = path.join(root, 'scripts', 'install-cuda-providers');
  const run = spawnSync('python3', [script, '--node-modules', path.join(tree, 'node_modules'), '--cache', wheels!, '--offline'], { encoding: 'utf8', timeout: 240_000 });
  expect(run.status, run.stderr).toBe(0);
  return run.stderr;
}

async function startThread(thread: string, init: ModelInit): Promise<InitReply> {
  const worker = new Worker(thread, { workerData: init });
  try {
    return await new Promise<InitReply>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
  } finally {
    await worker.terminate();
  }
}

describe.runIf(runs)('CUDA provider libraries installed from PyPI wheels', () => {
  it('installs offline, again as a no-op, and starts CUDA only where a driver is', { timeout: 300_000 }, async () => {
    const thread = prepareTree();
    const first = runInstaller();
    expect(first).toMatch(/installed/);
    const bin = path.join(tree, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64');
    for (const lib of ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so', 'libcudnn.so.9', 'libcublasLt.so.13', 'libcudart.so.13']) {
      expect(existsSync(path.join(bin, lib)), lib).toBe(true);
    }
    expect(runInstaller()).toMatch(/already installed/);

    const bundle = await loadBundle(FIXTURE_BUNDLE);
    const init: ModelInit = {
      modelPath: bundle.modelPath,
      expectedInputs: bundle.manifest.onnx.inputs,
      output: bundle.manifest.onnx.output,
      dimension: bundle.dimension,
      provider: 'cuda',
      cudaFallback: false,
      cudaDeviceId: 0,
      intraOpThreads: 1,
    };
    const reply = await startThread(thread, init);
    if (hasDriver()) {
      expect(reply).toMatchObject({ type: 'ready', provider: 'cuda' });
    } else {
      expect(reply.type).toBe('failed');
      expect(reply.type === 'failed' && reply.message).toMatch(/no NVIDIA driver .*libcuda\.so\.1.*QEMBED_CUDA_FALLBACK=true/s);
    }
  });
});
