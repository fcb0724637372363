// @ts-check
/**
 * Says why onnxruntime could not start its CUDA execution provider. onnxruntime-node's error is
 * only "Failed to load shared library" (the reason goes to onnxruntime's own log), so this looks
 * for the provider's files where onnxruntime loads them from and asks the dynamic loader itself.
 *
 * Plain JavaScript, like the model thread that uses it.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const PROVIDER = 'libonnxruntime_providers_cuda.so';
const SHARED = 'libonnxruntime_providers_shared.so';

/** The folder onnxruntime-node loads providers from: the one that holds its libonnxruntime. */
export function providerDir() {
  const pkg = createRequire(import.meta.url).resolve('onnxruntime-node/package.json');
  return join(dirname(pkg), 'bin', 'napi-v6', process.platform, process.arch);
}

/**
 * @param {string} ortMessage the error onnxruntime-node threw when the session was created
 * @returns {string} what is missing and what to do, without the QEMBED_CUDA_FALLBACK advice
 */
export function diagnoseCuda(ortMessage) {
  const dir = providerDir();
  const absent = [SHARED, PROVIDER].filter((f) => !existsSync(join(dir, f)));
  if (absent.length > 0) {
    return `the CUDA provider libraries are not installed (no ${absent.join(' or ')} in ${dir}): run scripts/install-cuda-providers (docs/deploy.md)`;
  }
  const loaderError = loadError(join(dir, PROVIDER));
  if (loaderError === null) {
    // Every library loads, so onnxruntime failed when it asked the driver for a device.
    return `the CUDA provider's libraries load, but onnxruntime could not start it (${ortMessage}): no usable NVIDIA GPU, or a driver too old for CUDA 13 (it needs 580 or newer); nvidia-smi shows what this host sees`;
  }
  if (/\blibcuda\.so\.1\b/.test(loaderError)) {
    return `no NVIDIA driver (${loaderError}): libcuda.so.1 comes with the driver, not with the provider libraries; run on a host with an NVIDIA GPU and a driver for CUDA 13 (580 or newer), in Docker with --gpus and the NVIDIA Container Toolkit`;
  }
  return `the CUDA provider in ${dir} cannot be loaded (${loaderError}): run scripts/install-cuda-providers again`;
}

/**
 * Loads a shared library the way onnxruntime would and returns the loader's error, or null when
 * it loads. process.dlopen is Node's only way to call dlopen; a library that loads but is not a
 * Node addon fails later, with "did not self-register", which here means success.
 * @param {string} path
 * @returns {string | null}
 */
export function loadError(path) {
  try {
    process.dlopen({ exports: {} }, path);
    return null;
  } catch (e) {
    const message = String(/** @type {Error} */ (e).message);
    return /did not self-register/.test(message) ? null : message;
  }
}
