/**
 * npx tsx bench/encode-compare.ts --bundle BASELINE --bundle OTHER [...] — texts/second of the
 * service's encoder in-process (tokenizer, batching queue, onnxruntime-node) for several bundles
 * on the same MS MARCO passages, as stage (a) of `npm run bench:encode` measures it, but with
 * the bundles interleaved: every round runs every bundle once (in a rotated order, so that no
 * bundle always follows the same one), and the ratio to the first bundle is taken within the
 * round. On a shared machine absolute numbers drift between minutes; ratios taken seconds apart
 * drift much less. Prints a table of median ratios with their min-max; `--json` prints JSON.
 *
 * Options: --bundle DIR (repeatable, first = baseline), --texts N (default 300), --rounds R
 * (default 5), --calls 1,32 (texts per embed call), --json.
 *
 * --smoke: a run of seconds that proves the comparison works end to end (test/bench/smoke.test.ts
 * runs it): 32 of the parity texts (test/fixtures/parity-texts.json) instead of MS MARCO, one
 * round. Its figures mean nothing.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { processConfig } from '../src/config.js';
import { loadBundle } from '../src/encoder/bundle.js';
import { createEncoder } from '../src/encoder/encoder.js';
import { projectRoot } from '../src/paths.js';
import { median } from './stats.js';

const { values: opts } = parseArgs({
  options: {
    bundle: { type: 'string', multiple: true },
    texts: { type: 'string', default: '300' },
    rounds: { type: 'string', default: '5' },
    calls: { type: 'string', default: '1,32' },
    json: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
  },
});
const smoke = opts.smoke;
if (smoke) Object.assign(opts, { texts: '32', rounds: '1' });
const bundles = opts.bundle ?? [];
if (bundles.length < 2) {
  console.error('usage: bench/encode-compare.ts --bundle BASELINE --bundle OTHER [--bundle ...]');
  process.exit(2);
}
const corpus = smoke
  ? path.join(projectRoot, 'test', 'fixtures', 'parity-texts.json')
  : path.resolve(projectRoot, '..', 'shared', 'datasets', 'msmarco-5k', 'corpus.jsonl');
if (!existsSync(corpus)) {
  console.error(`bench/encode-compare: ${corpus} not found (the comparison needs the real passages; --smoke runs on the test fixtures)`);
  process.exit(1);
}
const texts = smoke
  ? (JSON.parse(readFileSync(corpus, 'utf8')) as string[]).slice(0, Number(opts.texts))
  : readFileSync(corpus, 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .slice(0, Number(opts.texts))
      .map((l) => (JSON.parse(l) as { text: string }).text);
const calls = opts.calls.split(',').map(Number);
const rounds = Number(opts.rounds);
const log = (line: string) => (opts.json ? console.error(line) : console.log(line));

/** Texts/second of one bundle for each call size; the encoder lives only for the measurement. */
async function measure(dir: string): Promise<Record<string, number>> {
  const encoder = await createEncoder(await loadBundle(dir), processConfig());
  try {
    await encoder.embed(texts.slice(0, 16), { inputType: 'document', truncate: true });
    const result: Record<string, number> = {};
    for (const size of calls) {
      const start = performance.now();
      for (let i = 0; i < texts.length; i += size) {
        await encoder.embed(texts.slice(i, i + size), { inputType: 'document', truncate: true });
      }
      result[String(size)] = texts.length / ((performance.now() - start) / 1000);
    }
    return result;
  } finally {
    await encoder.close();
  }
}

const runs: Record<string, Record<string, number>>[] = [];
for (let round = 0; round < rounds; round++) {
  const current: Record<string, Record<string, number>> = {};
  for (let k = 0; k < bundles.length; k++) {
    const dir = bundles[(k + round) % bundles.length]!;
    current[dir] = await measure(dir);
    log(`round ${round + 1}/${rounds} ${dir}: ${calls.map((c) => `${c}: ${current[dir]![String(c)]!.toFixed(1)}`).join(', ')} texts/s`);
  }
  runs.push(current);
}

const base = bundles[0]!;
const summary: Record<string, Record<string, { texts_per_s: number; ratio: number; ratio_min: number; ratio_max: number }>> = {};
for (const dir of bundles) {
  summary[dir] = {};
  for (const size of calls) {
    const key = String(size);
    const values = runs.map((r) => r[dir]![key]!);
    const ratios = runs.map((r) => r[dir]![key]! / r[base]![key]!);
    summary[dir]![key] = {
      texts_per_s: Number(median(values).toFixed(1)),
      ratio: Number(median(ratios).toFixed(2)),
      ratio_min: Number(Math.min(...ratios).toFixed(2)),
      ratio_max: Number(Math.max(...ratios).toFixed(2)),
    };
  }
}
if (opts.json) {
  console.log(JSON.stringify({ texts: texts.length, calls, rounds: runs, summary }, null, 2));
} else {
  console.log(`\n${texts.length} ${smoke ? 'fixture texts (--smoke: the figures mean nothing)' : 'MS MARCO passages'}, ${rounds} rounds; ratio to ${base} (median, min-max):`);
  for (const dir of bundles) {
    const cells = calls.map((c) => {
      const s = summary[dir]![String(c)]!;
      return `calls of ${c}: ${s.texts_per_s.toFixed(1)} texts/s, ${s.ratio.toFixed(2)}x (${s.ratio_min.toFixed(2)}-${s.ratio_max.toFixed(2)})`;
    });
    console.log(`  ${dir.padEnd(36)} ${cells.join(' | ')}`);
  }
}
