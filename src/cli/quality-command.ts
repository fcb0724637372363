/**
 * `qembed quality NAME`: the recall measured on a collection (src/quality/), as a table or as
 * the JSON GET /collections/{name} answers in `quality`. From a running server (--url), or from
 * the database directly: then what the server last persisted, and with --measure the pending
 * sample measured now at full speed (documents standing in for queries when none were served).
 */
import { parseArgs } from 'node:util';
import { compose } from '../composition.js';
import { processConfig } from '../config.js';
import { qualityView } from '../http/schemas/recall.js';
import { RECALL_SUMMARY_MULTIPLIERS as SHOWN } from '../search/search-service.js';

export const QUALITY_HELP = `usage: qembed quality NAME [options]

The recall@10 measured on a collection without labels: for a sample of the queries it served
(or documents standing in for them), the exact int8 top 10 (every document scanned) against the
first stage's order; per first stage and rescore multiplier, with an interval of about 95% and
the multiplier rescore_multiplier "auto" uses for the collection's target_recall.

options:
  --url URL           ask a running server (e.g. http://127.0.0.1:8080); otherwise the database
                      is opened directly (on SQLite the server must be stopped)
  --api-key KEY       bearer token for --url when the server has QEMBED_API_KEY set
  --measure           direct mode: measure what is pending now, at full speed, and save it
  --json              print the JSON of GET /collections/{name}'s "quality"
  --data-dir DIR      data folder (default: QEMBED_DATA_DIR or ./data; unused with QEMBED_DATABASE_URL)
  --model-dir DIR     model bundle of the collection's codes (default: what the server serves)`;

type QualityJson = ReturnType<typeof qualityView>;

const pct = (x: number) => (100 * x).toFixed(1);

/** The report as a table: one row per first stage, recall@10 [interval] at the usual multipliers. */
export function qualityTable(name: string, q: QualityJson): string {
  const lines = [`collection ${name}: target recall@10 ${q.target_recall}`];
  if (!q.enabled) return `${lines[0]}\nrecall measurement is off (QEMBED_QUALITY_SAMPLE=0)`;
  const running = q.measuring ? `; measuring ${q.measuring.queries} queries now (${q.measuring.scanned_documents} of ${q.measuring.documents} documents scanned)` : '';
  if (q.basis === null) {
    lines.push(`nothing measured yet (${q.sampled_queries} sampled queries, ${q.pending} pending${running}); auto uses multiplier 4 meanwhile`);
    return lines.join('\n');
  }
  lines.push(
    `${q.measured_queries} measured ${q.basis === 'queries' ? 'served queries' : 'documents standing in for queries (too few served yet)'}; ` +
      `newest ${q.measured_at} at ${q.documents_at_measurement} documents; ${q.pending} pending; ${q.sampled_queries} of ${q.queries_seen} served queries sampled${running}`,
  );
  lines.push('', `| first stage | auto | ${SHOWN.map((m) => `m=${m}`).join(' | ')} |`, `| --- | --- | ${SHOWN.map(() => '---').join(' | ')} |`);
  for (const [stage, s] of Object.entries(q.first_stages)) {
    const cells = SHOWN.map((m) => {
      const r = s.recall_at_10.find((x) => x.multiplier === m);
      return r ? `${pct(r.recall)} [${pct(r.low)}, ${pct(r.high)}]` : '-';
    });
    lines.push(`| ${stage} | ${s.auto_multiplier}${s.target_met ? '' : ' (target not met)'} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

export async function qualityCommand(argv: string[], usageError: (message: string) => Error): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      'api-key': { type: 'string' },
      measure: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      'data-dir': { type: 'string' },
      'model-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${QUALITY_HELP}\n`);
    return 0;
  }
  if (positionals.length !== 1) throw usageError('give exactly one collection NAME');
  const name = positionals[0]!;
  if (values.url && values.measure) throw usageError('--measure works on the database directly; a server measures in the background on its own');
  let quality: QualityJson;
  if (values.url) {
    const apiKey = values['api-key'];
    const res = await fetch(`${values.url.replace(/\/+$/, '')}/collections/${encodeURIComponent(name)}`, { headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {} });
    const body = (await res.json().catch(() => undefined)) as { quality?: QualityJson; error?: { code: string; message: string } } | undefined;
    if (res.status !== 200 || !body?.quality) throw new Error(`GET /collections/${name}: HTTP ${res.status}${body?.error ? ` ${body.error.code}: ${body.error.message}` : ''}`);
    quality = body.quality;
  } else {
    const config = processConfig({
      ...(values['data-dir'] !== undefined && { dataDir: values['data-dir'] }),
      ...(values['model-dir'] !== undefined && { modelDir: values['model-dir'] }),
    });
    const modelDir = values['model-dir'];
    const local = await compose(config, { database: 'configured', model: modelDir === undefined ? 'tools' : { dir: modelDir } });
    try {
      const started = performance.now();
      const info = values.measure ? await local.search.measureQuality(name) : local.search.getCollection(name);
      if (values.measure) process.stderr.write(`measured in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
      quality = qualityView(info.quality);
    } finally {
      await local.close();
    }
  }
  process.stdout.write(values.json ? `${JSON.stringify(quality, null, 2)}\n` : `${qualityTable(name, quality)}\n`);
  return 0;
}
