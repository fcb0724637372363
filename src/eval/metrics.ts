/**
 * Retrieval metrics with trec_eval's definitions (as pytrec_eval computes them):
 * - ndcg_cut.k: gains are the judged grades, discount 1/log2(rank + 1), ideal ranking from all
 *   judged documents of the query — those absent from the corpus included (unretrievable);
 * - recall.k: relevant (grade ≥ 1) documents in the top k over all relevant documents;
 * - recip_rank@k (MRR@k): 1 / rank of the first relevant document within the top k, else 0.
 * Averages are over the queries that have judgments; unjudged queries are skipped.
 */
import type { Qrels } from '../datasets/beir.js';

export type Ranking = readonly string[];

export function ndcgAt(k: number, ranking: Ranking, judged: ReadonlyMap<string, number>): number {
  let dcg = 0;
  for (let i = 0; i < Math.min(k, ranking.length); i++) {
    const gain = judged.get(ranking[i]!) ?? 0;
    if (gain > 0) dcg += gain / Math.log2(i + 2);
  }
  const ideal = [...judged.values()].filter((g) => g > 0).sort((a, b) => b - a);
  let idcg = 0;
  for (let i = 0; i < Math.min(k, ideal.length); i++) idcg += ideal[i]! / Math.log2(i + 2);
  return idcg === 0 ? 0 : dcg / idcg;
}

export function recallAt(k: number, ranking: Ranking, judged: ReadonlyMap<string, number>): number {
  const relevant = [...judged.values()].filter((g) => g > 0).length;
  if (relevant === 0) return 0;
  let found = 0;
  for (let i = 0; i < Math.min(k, ranking.length); i++) if ((judged.get(ranking[i]!) ?? 0) > 0) found++;
  return found / relevant;
}

export function mrrAt(k: number, ranking: Ranking, judged: ReadonlyMap<string, number>): number {
  for (let i = 0; i < Math.min(k, ranking.length); i++) if ((judged.get(ranking[i]!) ?? 0) > 0) return 1 / (i + 1);
  return 0;
}

export interface Metrics {
  'ndcg@10': number;
  'recall@10': number;
  'recall@100': number;
  'mrr@10': number;
}

/** Mean metrics over the judged queries of `rankings` (query id → ranked document ids). */
export function evaluateRankings(rankings: ReadonlyMap<string, Ranking>, qrels: Qrels): Metrics & { queries: number } {
  const sums = { 'ndcg@10': 0, 'recall@10': 0, 'recall@100': 0, 'mrr@10': 0 };
  let queries = 0;
  for (const [qid, ranking] of rankings) {
    const judged = qrels.get(qid);
    if (!judged) continue;
    queries++;
    sums['ndcg@10'] += ndcgAt(10, ranking, judged);
    sums['recall@10'] += recallAt(10, ranking, judged);
    sums['recall@100'] += recallAt(100, ranking, judged);
    sums['mrr@10'] += mrrAt(10, ranking, judged);
  }
  const mean = (x: number) => (queries === 0 ? 0 : x / queries);
  return {
    'ndcg@10': mean(sums['ndcg@10']),
    'recall@10': mean(sums['recall@10']),
    'recall@100': mean(sums['recall@100']),
    'mrr@10': mean(sums['mrr@10']),
    queries,
  };
}

/**
 * Fraction of the reference top-k found in the candidate's top `depth` (default k), averaged
 * over all queries of the reference, judged or not.
 */
export function fidelityAt(k: number, reference: ReadonlyMap<string, Ranking>, candidate: ReadonlyMap<string, Ranking>, depth = k): number {
  let sum = 0;
  let n = 0;
  for (const [qid, ref] of reference) {
    const top = new Set(ref.slice(0, k));
    if (top.size === 0) continue;
    const got = candidate.get(qid) ?? [];
    let hit = 0;
    for (const id of got.slice(0, depth)) if (top.has(id)) hit++;
    sum += hit / top.size;
    n++;
  }
  return n === 0 ? 0 : sum / n;
}
