/**
 * bench:recall-service's record and its section of docs/quality.md ("Recall measured by the
 * service"): the service's own estimate against held-out queries, and what auto chose.
 */
import type { FirstStage } from '../../src/search/types.js';
import { MULTIPLIER_MAX } from '../../src/quality/estimate.js';

export interface ServiceRow {
  documents: number;
  bits: number;
  stage: FirstStage;
  basis: string | null;
  measuredQueries: number;
  byMultiplier: { multiplier: number; estimate: number; low: number; high: number; heldOut: number }[];
  auto: { multiplier: number; heldOut: number; p50Ms: number; p50MsAt4: number; estimate: number | null; low: number | null };
}

export interface ServiceRecord {
  measuredAt?: string;
  cpu: string;
  model: string;
  corpus: string;
  passages: number;
  estimationQueries: number;
  heldOutQueries: number;
  /** N from which the estimate must agree with the held-out recall, and by how much (the issue's target). */
  agreementFrom?: number;
  agreement?: number;
  target?: number;
  rows: ServiceRow[];
  misses: string[];
}

const f3 = (x: number | null) => (x === null || Number.isNaN(x) ? '-' : x.toFixed(3));
const pts = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(100 * x).toFixed(1)}`;
const n = (x: number) => x.toLocaleString('en-US');

export function serviceSectionMarkdown(r: ServiceRecord): string {
  const from = r.agreementFrom ?? 100_000;
  const within = r.agreement ?? 0.015;
  const target = r.target ?? 0.99;
  const large = r.rows.flatMap((row) => (row.documents >= from ? row.byMultiplier.map((b) => Math.abs(b.estimate - b.heldOut)) : []));
  const worst = large.length > 0 ? Math.max(...large) : Number.NaN;
  const capped = r.rows.filter((row) => row.auto.low !== null && row.auto.low < target);
  const lines = [
    '## Recall measured by the service, against queries it never saw',
    '',
    "What `GET /collections/{name}` reports (`quality`: docs/search.md) is an estimate from the collection's own sampled queries. " +
      'This checks it on the recall corpus above: the corpus goes into a collection grown through each N (the same nested subsets as bench:recall), ' +
      `its queries are split in two by a seeded shuffle: ${n(r.estimationQueries)} are searched once as a user's would be (the collection's sample keeps up to 512 of them, QEMBED_QUALITY_SAMPLE, ` +
      `and the service measures them at every N), and ${n(r.heldOutQueries)} held-out queries, never sampled, measure what the service really returns: ` +
      'their recall@10 against the exact int8 top 10 (`rescore: "exact"`) at each multiplier, and with `"auto"` at the default target. Written by:',
    '',
    '```sh',
    'npm run bench:recall-service -- --docs   # after npm run bench:recall-corpus',
    '```',
    '',
    `Measured ${r.measuredAt ?? ''} on ${r.cpu}, model \`${r.model}\`, ${n(r.passages)} passages. ` +
      (Number.isNaN(worst)
        ? ''
        : `At N ≥ ${n(from)} the estimate and the held-out recall differ by at most ${(100 * worst).toFixed(2)} points (target: ${(100 * within).toFixed(1)}). `) +
      (r.misses.length === 0 ? 'Every target was met.' : `Targets missed: ${r.misses.join('; ')}.`),
    '',
    'Estimate [interval] / held-out recall@10 (difference in points):',
    '',
    `| N | bits | first stage | ${r.rows[0]?.byMultiplier.map((b) => `m = ${b.multiplier}`).join(' | ') ?? ''} |`,
    `| --- | --- | --- | ${r.rows[0]?.byMultiplier.map(() => '---').join(' | ') ?? ''} |`,
    ...r.rows.map(
      (row) =>
        `| ${n(row.documents)} | ${row.bits} | ${row.stage} | ${row.byMultiplier.map((b) => `${f3(b.estimate)} [${f3(b.low)}, ${f3(b.high)}] / ${f3(b.heldOut)} (${pts(b.estimate - b.heldOut)})`).join(' | ')} |`,
    ),
    '',
    `\`rescore_multiplier: "auto"\` at target ${target}: the multiplier it chose (the smallest whose lower bound reaches the target, up to ${MULTIPLIER_MAX}), the held-out recall@10 it gave, ` +
      'and the search p50 it cost against multiplier 4 (in-process, vector queries: no encoding):',
    '',
    '| N | bits | first stage | auto chose | estimate (lower bound) | held-out recall@10 | p50 auto | p50 m = 4 | ratio |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...r.rows.map(
      (row) =>
        `| ${n(row.documents)} | ${row.bits} | ${row.stage} | ${row.auto.multiplier} | ${f3(row.auto.estimate)} (${f3(row.auto.low)}) | ${f3(row.auto.heldOut)}${row.auto.heldOut < target ? ' (below)' : ''} | ` +
        `${row.auto.p50Ms.toFixed(2)} ms | ${row.auto.p50MsAt4.toFixed(2)} ms | ${(row.auto.p50Ms / row.auto.p50MsAt4).toFixed(2)} |`,
    ),
    '',
    `Where no multiplier's lower bound up to ${MULTIPLIER_MAX} reaches the target, auto takes ${MULTIPLIER_MAX} and every answer says \`"target_met": false\`` +
      (capped.length === 0
        ? ': it did not happen here.'
        : `: here ${capped.map((row) => `N = ${n(row.documents)} ${row.bits} bits ${row.stage} (lower bound ${(row.auto.low ?? Number.NaN).toFixed(4)}, held-out ${row.auto.heldOut.toFixed(4)})`).join('; ')}.`),
  ];
  return lines.join('\n');
}
