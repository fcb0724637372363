/** Runs the qembed CLI as its own process, as a user would. */
import { spawn } from 'node:child_process';
import { projectRoot } from '../../src/paths.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `qembed <args>` with a clean environment (PATH, HOME, one onnxruntime thread) plus `env`. */
export function runQembed(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/cli/qembed.ts', ...args], {
    cwd: projectRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', QEMBED_INTRA_OP_THREADS: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => proc.on('exit', (code) => resolve({ code, stdout, stderr })));
}
