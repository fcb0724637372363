/**
 * The evaluation's metrics agree with pytrec_eval (trec_eval's reference implementation) on
 * the same run and qrels. Needs the worker's Python; scripts/test sets TEST_WORKER_PYTHON.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Qrels } from '../../src/datasets/beir.js';
import { mrrAt, ndcgAt, recallAt } from '../../src/eval/metrics.js';
import { workerPython } from '../helpers/dependencies.js';

const python = workerPython('the pytrec_eval cross-check of the metrics');

/** A deterministic pseudo-random run and graded qrels, with relevant documents never retrieved. */
function fixture(): { rankings: Map<string, string[]>; qrels: Qrels } {
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const rankings = new Map<string, string[]>();
  const qrels: Qrels = new Map();
  for (let q = 0; q < 40; q++) {
    const docs = Array.from({ length: 150 }, (_, i) => `d${i}`).sort(() => rand() - 0.5);
    rankings.set(`q${q}`, docs.slice(0, 100 + Math.floor(rand() * 50)));
    const judged = new Map<string, number>();
    for (let j = 0; j < 1 + Math.floor(rand() * 12); j++) judged.set(docs[Math.floor(rand() * docs.length)]!, Math.floor(rand() * 4));
    judged.set(`missing-from-corpus-${q}`, 1 + (q % 3));
    if (q % 7 !== 0) qrels.set(`q${q}`, judged);
  }
  return { rankings, qrels };
}

describe.runIf(Boolean(python))('metrics agree with pytrec_eval', () => {
  it('NDCG@10, Recall@10, Recall@100 and MRR@10 per query', () => {
    const { rankings, qrels } = fixture();
    const dir = mkdtempSync(path.join(tmpdir(), 'qembed-metrics-'));
    try {
      const run = Object.fromEntries([...rankings].map(([q, r]) => [q, Object.fromEntries(r.map((d, i) => [d, r.length - i]))]));
      const qrelObj = Object.fromEntries([...qrels].map(([q, m]) => [q, Object.fromEntries(m)]));
      writeFileSync(path.join(dir, 'run.json'), JSON.stringify(run));
      writeFileSync(path.join(dir, 'qrels.json'), JSON.stringify(qrelObj));
      const script = `
import json, sys, pytrec_eval
run = json.load(open(sys.argv[1])); qrels = json.load(open(sys.argv[2]))
full = pytrec_eval.RelevanceEvaluator(qrels, {'ndcg_cut.10', 'recall.10,100'}).evaluate(run)
top10 = {q: dict(sorted(d.items(), key=lambda kv: -kv[1])[:10]) for q, d in run.items()}
rr = pytrec_eval.RelevanceEvaluator(qrels, {'recip_rank'}).evaluate(top10)
print(json.dumps({q: {**full[q], **rr[q]} for q in full}))`;
      const out = JSON.parse(execFileSync(python!, ['-c', script, path.join(dir, 'run.json'), path.join(dir, 'qrels.json')], { encoding: 'utf8' })) as Record<
        string,
        Record<string, number>
      >;
      expect(Object.keys(out).length).toBe(qrels.size);
      for (const [qid, ref] of Object.entries(out)) {
        const ranking = rankings.get(qid)!;
        const judged = qrels.get(qid)!;
        expect(ndcgAt(10, ranking, judged), `${qid} ndcg`).toBeCloseTo(ref.ndcg_cut_10!, 12);
        expect(recallAt(10, ranking, judged), `${qid} recall@10`).toBeCloseTo(ref.recall_10!, 12);
        expect(recallAt(100, ranking, judged), `${qid} recall@100`).toBeCloseTo(ref.recall_100!, 12);
        expect(mrrAt(10, ranking, judged), `${qid} mrr@10`).toBeCloseTo(ref.recip_rank!, 12);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
