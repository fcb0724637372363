/**
 * Recall@10 from measurements, and the multiplier `rescore_multiplier: "auto"` chooses.
 *
 * A measured query is, for one first stage, the positions its exact top-10 documents (the int8
 * ranking over the whole collection: exact.ts) hold in that first stage's order. With top_k 10
 * and multiplier m the first stage keeps 10·m candidates; rescoring with the same int8 score puts
 * every exact top-10 document among them back on top, so the query's end-to-end recall@10 is the
 * share of its positions below 10·m (ties in the int8 score aside). The estimate is the mean over
 * the measured queries.
 *
 * The interval: each query's recall is a mean of up to 10 hits, bounded in [0, 1]. Its spread is
 * taken as the larger of the sample variance and p̃(1 − p̃)/10, p̃ being the pooled hit rate with
 * two hits and two misses added (Agresti–Coull): a sample whose queries all found everything
 * still gets an interval that narrows only as the queries grow (with 50 such queries, 0.9945 to
 * 1; with 500, 0.9993 to 1), never a width of zero. Then mean ± 2.326·√(variance/n), clipped to
 * [0, 1]: about 98% two-sided, so the lower bound auto trusts is about 99% one-sided (a target
 * promised to many collections at once should fail for few of them: at 97.5% one in forty).
 */

/** The recall measured and served: of the exact top 10. */
export const RECALL_AT = 10;
/**
 * The largest multiplier a search may ask for, and so the depth of the first-stage order measured
 * (10 × 2,000 = 20,000 positions, the most candidates a search rescores: CANDIDATES_MAX). Large:
 * on 245k real passages the Hamming first stage at 384 bits needs m ≈ 20 to 30 for 0.99, and at
 * 128 bits hundreds (docs/quality.md); auto must be able to reach the target where a full scan is
 * not yet needed, and each search says what it cost.
 */
export const MULTIPLIER_MAX = 2000;
/** Positions measured per query: a document beyond them is "not found" at any multiplier. */
export const MEASURED_DEPTH = RECALL_AT * MULTIPLIER_MAX;
/** A position past the measured depth (or a document the first stage never returned). */
export const NOT_FOUND = 0xffff;
/** The multipliers a collection's report lists (auto chooses among all of 1..MULTIPLIER_MAX). */
export const REPORTED_MULTIPLIERS: readonly number[] = [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 25, 32, 40, 50, 64, 80, 100, 125, 160, 200, 250, 320, 400, 500, 640, 800, 1000, 1250, 1600, 2000];
/** The few of them a summary shows: the Prometheus gauges and `qembed quality`'s table. */
export const SUMMARY_MULTIPLIERS: readonly number[] = [1, 2, 4, 8, 16, 32, 64, 100, 250, 1000];
/** The recall target of a collection that sets none. */
export const DEFAULT_TARGET_RECALL = 0.99;
/** The multiplier auto uses for a collection with no measurement yet (and today's default for a search that names none). */
export const UNMEASURED_MULTIPLIER = 4;

/** The interval's half-width in standard errors (98% two-sided, 99% one-sided). */
export const CONFIDENCE_Z = 2.326;

export interface RecallAtMultiplier {
  multiplier: number;
  /** Mean recall@10 over the measured queries. */
  recall: number;
  /** The interval's ends (about 98%). */
  low: number;
  high: number;
}

/**
 * Recall@10 at every multiplier 1..MULTIPLIER_MAX from each query's positions (one array per
 * query: the positions of its exact top-10, NOT_FOUND where beyond; shorter than 10 when the
 * collection held fewer documents). Queries with no exact documents are left out. Empty when
 * nothing was measured.
 *
 * A query's recall changes at no more than 10 multipliers (where one of its positions enters
 * 10·m), so the sums are kept as integer changes by multiplier and by the query's length and
 * accumulated once: O(queries × 10 + MULTIPLIER_MAX), exact integers until the final divisions.
 */
export function estimateRecall(positions: readonly Uint16Array[]): RecallAtMultiplier[] {
  const used = positions.filter((p) => p.length > 0);
  if (used.length === 0) return [];
  const n = used.length;
  const L = RECALL_AT + 1;
  // At multiplier index m (m + 1 − 1) and query length len: hits gained, and the growth of Σ hits².
  const hitsGained = new Float64Array(MULTIPLIER_MAX * L);
  const squaresGained = new Float64Array(MULTIPLIER_MAX * L);
  const queriesOfLength = new Float64Array(L);
  for (const p of used) {
    const len = Math.min(p.length, RECALL_AT);
    queriesOfLength[len]!++;
    const sorted = Uint16Array.from(p).sort();
    for (let f = 0; f < len && sorted[f]! < MEASURED_DEPTH; f++) {
      const at = Math.floor(sorted[f]! / RECALL_AT) * L + len;
      hitsGained[at]! += 1;
      squaresGained[at]! += 2 * f + 1; // (f + 1)² − f²
    }
  }
  let total = 0;
  for (let len = 1; len < L; len++) total += queriesOfLength[len]! * len;
  const hits = new Float64Array(L);
  const squares = new Float64Array(L);
  const out: RecallAtMultiplier[] = [];
  for (let m = 1; m <= MULTIPLIER_MAX; m++) {
    let sum = 0;
    let sumSquares = 0;
    let found = 0;
    for (let len = 1; len < L; len++) {
      hits[len]! += hitsGained[(m - 1) * L + len]!;
      squares[len]! += squaresGained[(m - 1) * L + len]!;
      sum += hits[len]! / len;
      sumSquares += squares[len]! / (len * len);
      found += hits[len]!;
    }
    const mean = sum / n;
    const sampleVariance = n > 1 ? Math.max(0, (sumSquares - n * mean * mean) / (n - 1)) : 0;
    const pooled = (found + 2) / (total + 4);
    const variance = Math.max(sampleVariance, (pooled * (1 - pooled)) / RECALL_AT);
    const half = CONFIDENCE_Z * Math.sqrt(variance / n);
    out.push({ multiplier: m, recall: mean, low: Math.max(0, mean - half), high: Math.min(1, mean + half) });
  }
  return out;
}

export interface MultiplierChoice {
  multiplier: number;
  /** The estimate at that multiplier; null before any measurement. */
  estimate: RecallAtMultiplier | null;
  /** Whether the estimate's lower bound reaches the target (false too before any measurement). */
  targetMet: boolean;
}

/**
 * The smallest multiplier up to `max` whose lower bound reaches `target`; `max` when none does
 * (the most the caller allows); UNMEASURED_MULTIPLIER (at most `max`) without a measurement.
 */
export function chooseMultiplier(estimates: readonly RecallAtMultiplier[], target: number, max = MULTIPLIER_MAX): MultiplierChoice {
  if (estimates.length === 0) return { multiplier: Math.min(UNMEASURED_MULTIPLIER, max), estimate: null, targetMet: false };
  for (const e of estimates) {
    if (e.multiplier > max) break;
    if (e.low >= target) return { multiplier: e.multiplier, estimate: e, targetMet: true };
  }
  return { multiplier: max, estimate: estimates[Math.min(max, estimates.length) - 1]!, targetMet: false };
}
