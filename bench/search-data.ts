/**
 * The corpus of bench:search: the 5,000 MS MARCO passages of ../shared/datasets/msmarco-5k (or
 * of another BEIR folder: `dataset`) encoded with the bundle (cached under .cache/bench-search/),
 * the rest synthetic with the same per-bit probabilities (independent bits); queries: the 50 real
 * MS MARCO queries. Without the bundle or the passages, everything is synthetic.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../src/config.js';
import { loadBundle } from '../src/encoder/bundle.js';
import { createEncoder } from '../src/encoder/encoder.js';
import { projectRoot } from '../src/paths.js';
import { createQuantizer, type Quantizer } from '../src/quantization/quantize.js';
import { xorshift32 } from '../test/helpers/random.js';

export const DIM = 384;
export const BYTES = DIM / 8;

/** Deterministic synthetic data: uniform in [0, 1). */
export function rng(seed: number) {
  const next = xorshift32(seed);
  return () => next() / 4294967296;
}

// --- Real passages and queries, encoded once and cached ------------------------------------
export interface RealData {
  texts: string[];
  docs: Float32Array[];
  queries: Float32Array[];
  quantizer: Quantizer;
  /** The bundle's fingerprint, or 'synthetic'. */
  fingerprint: string;
  source: string;
}

export async function realData(bundleDir: string, dataset = path.resolve(projectRoot, '..', 'shared', 'datasets', 'msmarco-5k')): Promise<RealData> {
  const readJsonl = (f: string) =>
    readFileSync(path.join(dataset, f), 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as { title?: string; text: string });
  if (!existsSync(path.join(bundleDir, 'manifest.json')) || !existsSync(path.join(dataset, 'corpus.jsonl'))) {
    // Without the model or the passages: all synthetic, bits fair coins, ranges ±0.2.
    const next = rng(1);
    const random = () => Float32Array.from({ length: DIM }, () => next() - 0.5);
    return {
      texts: Array.from({ length: 5000 }, (_, i) => `synthetic passage ${i}`),
      docs: Array.from({ length: 5000 }, random),
      queries: Array.from({ length: 50 }, random),
      quantizer: createQuantizer({ min: new Float32Array(DIM).fill(-0.5), max: new Float32Array(DIM).fill(0.5) }),
      fingerprint: 'synthetic',
      source: 'synthetic only (no model bundle or no msmarco-5k)',
    };
  }
  const bundle = await loadBundle(bundleDir);
  if (bundle.dimension !== DIM) throw new Error(`the bench wants a ${DIM}-dimension bundle; ${bundleDir} has ${bundle.dimension}`);
  const texts = readJsonl('corpus.jsonl').map((r) => (r.title ? `${r.title}\n${r.text}` : r.text));
  const queryTexts = readJsonl('queries.jsonl').map((r) => r.text);
  const cacheDir = path.join(projectRoot, '.cache', 'bench-search');
  const cache = path.join(cacheDir, `${bundle.fingerprint}-${createHash('sha256').update(JSON.stringify([texts, queryTexts])).digest('hex').slice(0, 12)}.f32`);
  let flat: Float32Array;
  if (existsSync(cache)) {
    const buf = readFileSync(cache);
    flat = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  } else {
    console.log(`  encoding ${texts.length} passages and ${queryTexts.length} queries with ${bundle.manifest.name} (cached for next time)…`);
    const encoder = await createEncoder(bundle, loadConfig({}));
    const embed = async (list: string[], inputType: 'query' | 'document') => {
      const out: Float32Array[] = [];
      for (let i = 0; i < list.length; i += 256) out.push(...(await encoder.embed(list.slice(i, i + 256), { inputType, truncate: true })).vectors);
      return out;
    };
    const docs = await embed(texts, 'document');
    const queries = await embed(queryTexts, 'query');
    await encoder.close();
    flat = new Float32Array((docs.length + queries.length) * DIM);
    [...docs, ...queries].forEach((v, i) => flat.set(v, i * DIM));
    mkdirSync(cacheDir, { recursive: true });
    writeFileSync(cache, flat);
  }
  const vec = (i: number) => flat.subarray(i * DIM, (i + 1) * DIM);
  return {
    texts,
    docs: texts.map((_, i) => vec(i)),
    queries: queryTexts.map((_, i) => vec(texts.length + i)),
    quantizer: createQuantizer(bundle.ranges),
    fingerprint: bundle.fingerprint,
    source: `${texts.length} passages of ${path.basename(dataset)} encoded with ${bundle.manifest.name} (${bundle.fingerprint})`,
  };
}

// --- The corpus of N codes ------------------------------------------------------------------
export function buildCodes(real: RealData, n: number) {
  const q = real.quantizer;
  const realBinary = real.docs.map((v) => q.toUbinary(v));
  const realInt8 = real.docs.map((v) => q.toInt8(v));
  // P(bit i = 1) over the real codes, MSB-first as packed.
  const ones = new Float64Array(DIM);
  for (const code of realBinary) for (let i = 0; i < DIM; i++) ones[i]! += (code[i >> 3]! >> (7 - (i & 7))) & 1;
  const p = ones.map((c) => c / realBinary.length);
  const codes = new Uint8Array(n * BYTES);
  const next = rng(42);
  for (let j = 0; j < n; j++) {
    if (j < realBinary.length) {
      codes.set(realBinary[j]!, j * BYTES);
      continue;
    }
    for (let b = 0; b < BYTES; b++) {
      let byte = 0;
      for (let k = 0; k < 8; k++) if (next() < p[b * 8 + k]!) byte |= 0x80 >> k;
      codes[j * BYTES + b] = byte;
    }
  }
  return { codes, realInt8, meanOnes: ones.reduce((a, b) => a + b, 0) / realBinary.length / DIM };
}

