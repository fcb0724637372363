/**
 * What bench:search measures qembed's first stage against, on the same codes: the plain C scan
 * of bench/reference-scan.c (compiled here when a C compiler is present), FAISS'
 * IndexBinaryFlat (Python faiss-cpu), a JavaScript popcount loop, and a float32 brute force.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { projectRoot } from '../src/paths.js';
import { BYTES, DIM } from './search-data.js';

/** Writes `files` into a temporary folder for `fn`, removed afterwards. */
function withFiles<T>(files: Record<string, Uint8Array>, fn: (paths: Record<string, string>) => T): T {
  const dir = mkdtempSync(path.join(tmpdir(), 'qembed-bench-'));
  try {
    const paths = Object.fromEntries(Object.entries(files).map(([name, data]) => {
      const file = path.join(dir, name);
      writeFileSync(file, data);
      return [name, file];
    }));
    return fn(paths);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The plain C histogram scan (bench/reference-scan.c), one core, compiled with `cc -O3
 * -march=native`: milliseconds of each search and the top-k distances of the first 10 queries;
 * undefined when no C compiler is found.
 */
export function referenceScan(codes: Uint8Array, queryCodes: Uint8Array, k: number, searches: number): { ms: number[]; distances: number[][]; compiler: string } | undefined {
  const compiler = ['cc', 'gcc', 'clang'].find((c) => {
    try {
      execFileSync(c, ['--version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  });
  if (!compiler) return undefined;
  const binary = path.join(projectRoot, '.cache', 'bench-search', 'reference-scan');
  mkdirSync(path.dirname(binary), { recursive: true });
  execFileSync(compiler, ['-O3', '-march=native', '-o', binary, path.join(projectRoot, 'bench', 'reference-scan.c')]);
  return withFiles({ codes, queries: queryCodes }, (p) => {
    const run = spawnSync(binary, [p.codes!, p.queries!, String(BYTES), String(k), String(searches)], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    if (run.status !== 0) throw new Error(`reference-scan failed: ${run.stderr}`);
    // The times on stdout, the first queries' distances on stderr.
    return { ms: (JSON.parse(run.stdout) as { ms: number[] }).ms, distances: JSON.parse(`[${run.stderr}]`) as number[][], compiler: `${compiler} -O3 -march=native` };
  });
}

/** FAISS IndexBinaryFlat on the same codes, run by `python` (default: scripts/worker-env's, with faiss-cpu). */
export function faiss(codes: Uint8Array, queryCodes: Uint8Array, k: number, searches: number, python?: string): { threads_1_ms: number[]; threads_2_ms: number[]; distances: number[][] } {
  return withFiles({ codes, queries: queryCodes }, (p) => {
    python ??= execFileSync(path.join(projectRoot, 'scripts', 'worker-env'), { encoding: 'utf8' }).trim();
    const args = [path.join(projectRoot, 'bench', 'search_faiss.py'), '--codes', p.codes!, '--queries', p.queries!];
    args.push('--bytes', String(BYTES), '--k', String(k), '--threads', '1,2', '--repeat', String(1 + Math.ceil(searches / (queryCodes.length / BYTES))));
    return JSON.parse(execFileSync(python, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 * 1024 * 1024 }));
  });
}

/** The first stage's alternative: Hamming top-k with a SWAR popcount over Uint32 words in JS. */
export function jsHammingTopK(words: Uint32Array, n: number, query: Uint32Array, k: number): number[] {
  const w = query.length;
  const pairs: [number, number][] = [];
  let thr = DIM;
  const prune = () => {
    pairs.sort((a, b) => a[1] - b[1] || a[0] - b[0]);
    pairs.length = k;
    thr = pairs[k - 1]![1] - 1;
  };
  for (let j = 0; j < n; j++) {
    let d = 0;
    for (let i = 0; i < w; i++) {
      let x = words[j * w + i]! ^ query[i]!;
      x -= (x >>> 1) & 0x55555555;
      x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
      d += Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
    }
    if (d <= thr) {
      pairs.push([j, d]);
      if (pairs.length >= 4 * k + 1024) prune();
    }
  }
  if (pairs.length > k) prune();
  return pairs.map((p) => p[1]).sort((a, b) => a - b);
}

/** Top-10 by dot product over n float32 vectors, a plain JavaScript loop. */
export function float32Scan(vectors: Float32Array, n: number, query: Float32Array, topK: number): number[] {
  const best = new Float64Array(topK).fill(-Infinity);
  const ids = new Int32Array(topK).fill(-1);
  for (let j = 0; j < n; j++) {
    const o = j * DIM;
    let s = 0;
    for (let i = 0; i < DIM; i++) s += vectors[o + i]! * query[i]!;
    if (s > best[topK - 1]!) {
      let at = topK - 1;
      while (at > 0 && best[at - 1]! < s) {
        best[at] = best[at - 1]!;
        ids[at] = ids[at - 1]!;
        at--;
      }
      best[at] = s;
      ids[at] = j;
    }
  }
  return Array.from(ids);
}

