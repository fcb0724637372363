/**
 * The processor the encoder runs on: its model and the instruction-set extensions that decide
 * which onnxruntime kernels run (float32 FMA width, int8 dot products). Reported by GET /health,
 * recorded with every encoder choice and printed by the benchmarks, so that every figure says
 * which CPU it came from.
 */
import { readFileSync } from 'node:fs';
import { arch, availableParallelism, cpus } from 'node:os';

/** Extensions that change onnxruntime's float32 or int8 kernels (x86-64 and ARM64 names). */
export const KERNEL_FEATURES = [
  'sse4_1',
  'avx',
  'avx2',
  'fma',
  'avx512f',
  'avx512bw',
  'avx512_vnni',
  'avx_vnni',
  'avx_vnni_int8',
  'amx_int8',
  'asimd',
  'asimddp',
  'i8mm',
  'sve',
] as const;

export interface CpuInfo {
  /** The processor's name, e.g. "AMD EPYC 7B13". */
  model: string;
  /** Node's architecture name: x64, arm64 … */
  arch: string;
  /** CPUs available to this process. */
  cpus: number;
  /** The extensions of KERNEL_FEATURES the processor has, in that order. */
  features: (typeof KERNEL_FEATURES)[number][];
  /** How onnxruntime multiplies uint8 by int8 here: 'dot-product' (VNNI, ARM dot product: sums
   * of 4 products in 32 bits) or 'pairwise-int16' (AVX2/AVX-512BW/SSE4.1 without VNNI: pairs of
   * products saturate at 16 bits, which qembed's 7-bit activation codes never reach). */
  int8Kernel: 'dot-product' | 'pairwise-int16' | 'unknown';
}

/** Parses /proc/cpuinfo text (Linux); exported for tests. */
export function parseCpuinfo(text: string): { model?: string; flags: Set<string> } {
  let model: string | undefined;
  const flags = new Set<string>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const key = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (model === undefined && (key === 'model name' || key === 'Model name' || key === 'Hardware')) model = value;
    // x86 lists "flags", ARM "Features"; every core lists the same set.
    if ((key === 'flags' || key === 'Features') && flags.size === 0) for (const f of value.split(/\s+/)) if (f) flags.add(f);
  }
  return { model, flags };
}

/** Describes a processor from its model name, flag set and architecture. */
export function describeCpu(model: string, flags: ReadonlySet<string>, architecture: string, count: number): CpuInfo {
  const features = KERNEL_FEATURES.filter((f) => flags.has(f));
  let int8Kernel: CpuInfo['int8Kernel'] = 'unknown';
  if (architecture === 'x64' && flags.size > 0) {
    int8Kernel = flags.has('avx512_vnni') || flags.has('avx_vnni') || flags.has('amx_int8') ? 'dot-product' : 'pairwise-int16';
  } else if (architecture === 'arm64' && flags.size > 0) {
    int8Kernel = flags.has('asimddp') || flags.has('i8mm') ? 'dot-product' : 'pairwise-int16';
  }
  return { model, arch: architecture, cpus: count, features, int8Kernel };
}

let cached: CpuInfo | undefined;

/** The processor this process runs on (read once). */
export function currentCpu(): CpuInfo {
  if (cached) return cached;
  let parsed: { model?: string; flags: Set<string> } = { flags: new Set() };
  try {
    parsed = parseCpuinfo(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    // Not Linux: the model name from Node, no flags.
  }
  const model = parsed.model ?? cpus()[0]?.model?.trim() ?? 'unknown';
  cached = describeCpu(model, parsed.flags, arch(), availableParallelism());
  return cached;
}

/** A short identity of the processor kind: a recorded measurement is only reused on the same one. */
export function cpuSignature(cpu: CpuInfo): string {
  return `${cpu.arch} | ${cpu.model} | ${cpu.cpus} cpus | ${cpu.features.join(' ')}`;
}
