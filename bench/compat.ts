/**
 * npm run bench:compat — what the compatibility layer costs: requests/second of
 * POST /v1/embeddings (OpenAI's shape) against POST /encode, 32 concurrent clients sending
 * single-text requests of the same real passages (MS MARCO from ../shared/datasets/msmarco-5k, else generated text),
 * on one server process serving the default model. The two endpoints alternate within each
 * round (the order rotated) and the ratio is taken within the round; the median over rounds is
 * printed with the processor. Target: /v1/embeddings >= 0.95 x /encode.
 *
 * Options: --bundle DIR (default: models/default), --requests N per endpoint and round (default
 * 1000), --rounds R (default 5).
 *
 * --smoke: a run of seconds that proves the benchmark works end to end (test/bench/smoke.test.ts
 * runs it): the test fixture's tiny bundle, 64 generated texts a round, one round. Its figures
 * mean nothing.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadBundle } from '../src/encoder/bundle.js';
import { currentCpu } from '../src/encoder/cpu.js';
import { projectRoot } from '../src/paths.js';
import { startServer } from '../test/helpers/server-process.js';
import { median } from './stats.js';

const { values: opts } = parseArgs({
  options: {
    bundle: { type: 'string' },
    requests: { type: 'string' },
    rounds: { type: 'string' },
    smoke: { type: 'boolean', default: false },
  },
});
const smoke = opts.smoke;
opts.bundle ??= smoke ? path.join(projectRoot, 'test', 'fixtures', 'tiny-bundle') : path.join(projectRoot, 'models', 'default');
const amount = Number(opts.requests ?? (smoke ? 64 : 1000));
const rounds = Number(opts.rounds ?? (smoke ? 1 : 5));
const corpus = path.resolve(projectRoot, '..', 'shared', 'datasets', 'msmarco-5k', 'corpus.jsonl');
const texts = !smoke && existsSync(corpus)
  ? readFileSync(corpus, 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .slice(0, amount)
      .map((l) => (JSON.parse(l) as { text: string }).text)
  : Array.from({ length: amount }, (_, i) => `passage ${i} about ${['rivers', 'cities', 'music', 'stars'][i % 4]} and what happened there in year ${1900 + (i % 120)}`);
const model = (await loadBundle(opts.bundle)).manifest.name;
const cpu = currentCpu();
console.log(`bench:compat on ${cpu.model} (${cpu.cpus} CPUs; ${cpu.features.filter((f) => /avx2|avx512f|vnni/.test(f)).join(', ') || 'no AVX2'})`);
console.log(`  ${amount} single-text requests per endpoint and round, 32 concurrent; texts: ${!smoke && existsSync(corpus) ? 'msmarco-5k passages' : 'generated'}; model ${model}${smoke ? ' (--smoke: the figures mean nothing)' : ''}\n`);

const bodies: Record<string, (text: string) => unknown> = {
  '/encode': (text) => ({ inputs: text }),
  '/v1/embeddings': (text) => ({ input: text, model, encoding_format: 'float' }),
};

const dataDir = mkdtempSync(path.join(tmpdir(), 'qembed-bench-compat-'));
const server = await startServer({ QEMBED_MODEL_DIR: opts.bundle, QEMBED_DATA_DIR: dataDir, QEMBED_LOG_LEVEL: 'warn' }, 120_000);
try {
  // 32 clients, each sending its next request when the previous answer arrived, timed to the
  // last answer. (autocannon stops on its one-second tick, which at ~150 requests/s quantized
  // the rates to 600/4 s or 600/5 s: too coarse for a 5% comparison.)
  const run = async (route: string): Promise<number> => {
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        for (let i = next++; i < amount; i = next++) {
          const res = await fetch(`${server.url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(bodies[route]!(texts[i % texts.length]!)) });
          if (!res.ok) throw new Error(`${route}: ${res.status} ${await res.text()}`);
          await res.arrayBuffer();
        }
      }),
    );
    return amount / ((performance.now() - started) / 1000);
  };
  await run('/encode'); // warm-up: model, tokenizer and connections
  const ratios: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? ['/encode', '/v1/embeddings'] : ['/v1/embeddings', '/encode'];
    const rate: Record<string, number> = {};
    for (const route of order) rate[route] = await run(route);
    ratios.push(rate['/v1/embeddings']! / rate['/encode']!);
    console.log(`  round ${round + 1}: /encode ${rate['/encode']!.toFixed(1)} req/s, /v1/embeddings ${rate['/v1/embeddings']!.toFixed(1)} req/s, ratio ${ratios.at(-1)!.toFixed(3)}`);
  }
  const m = median(ratios);
  console.log(`\n/v1/embeddings / /encode, median of ${rounds} rounds: ${m.toFixed(3)} (min ${Math.min(...ratios).toFixed(3)}, max ${Math.max(...ratios).toFixed(3)}; target >= 0.95: ${m >= 0.95 ? 'met' : 'missed'})`);
} finally {
  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
