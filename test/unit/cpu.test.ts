import { describe, expect, it } from 'vitest';
import { cpuSignature, currentCpu, describeCpu, parseCpuinfo } from '../../src/encoder/cpu.js';

const zen3 = `processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse4_1 avx avx2 fma bmi2\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse4_1 avx avx2 fma bmi2\n`;
const zen5 = `model name\t: AMD EPYC\nflags\t\t: sse4_1 avx avx2 fma avx512f avx512bw avx512_vnni avx_vnni\n`;
const graviton = `processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd evtstrm aes asimddp i8mm sve\n`;

describe('cpu', () => {
  it('reads the model and the kernel-relevant flags from /proc/cpuinfo', () => {
    const parsed = parseCpuinfo(zen3);
    const cpu = describeCpu(parsed.model!, parsed.flags, 'x64', 2);
    expect(cpu).toEqual({ model: 'AMD EPYC 7B13', arch: 'x64', cpus: 2, features: ['sse4_1', 'avx', 'avx2', 'fma'], int8Kernel: 'pairwise-int16' });
  });

  it('tells dot-product int8 kernels (VNNI, ARM dot product) from pairwise int16 ones', () => {
    const vnni = parseCpuinfo(zen5);
    expect(describeCpu(vnni.model!, vnni.flags, 'x64', 2).int8Kernel).toBe('dot-product');
    const arm = parseCpuinfo(graviton);
    expect(describeCpu('Neoverse', arm.flags, 'arm64', 4)).toMatchObject({ features: ['asimd', 'asimddp', 'i8mm', 'sve'], int8Kernel: 'dot-product' });
    expect(describeCpu('unknown', new Set(), 'x64', 1).int8Kernel).toBe('unknown');
  });

  it('describes the processor it runs on, with a signature that changes with it', () => {
    const cpu = currentCpu();
    expect(cpu.cpus).toBeGreaterThan(0);
    expect(cpuSignature(cpu)).toContain(cpu.model);
    expect(cpuSignature({ ...cpu, features: [...cpu.features, 'amx_int8'] })).not.toBe(cpuSignature(cpu));
  });
});
