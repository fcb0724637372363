/** Recall as the API shows it: a search's (the multiplier used, its estimate) and a collection's (what was measured). */
import { Type } from 'typebox';
import { FIRST_STAGES, type QualityReport, type SearchRecall } from '../../search/search-service.js';
import { Nullable, StringEnum } from './json.js';

const basisSchema = Nullable(
  StringEnum(['queries', 'documents'], {
    description: "What the estimate rests on: this collection's served queries, or documents standing in for queries until 50 served ones are measured; null before any measurement",
  }),
);

export const recallSchema = Type.Object(
  {
    multiplier: Nullable(Type.Integer({ description: 'The rescore multiplier used (1 without rescoring); null for an exact search' })),
    chosen_by: StringEnum(['request', 'auto', 'exact'], { description: '`request`: the multiplier asked for (or the default 4); `auto`: chosen from the measured recall; `exact`: every document ranked' }),
    estimated_recall_at_10: Nullable(Type.Number({ description: 'Share of the exact int8 top 10 this search is estimated to return (measured on the collection at this multiplier); 1 for an exact search; null before any measurement' })),
    interval: Nullable(Type.Array(Type.Number(), { minItems: 2, maxItems: 2, description: 'About 95% interval of the estimate' })),
    measured_queries: Type.Integer({ description: 'Measurements the estimate rests on' }),
    basis: basisSchema,
    target_recall: Nullable(Type.Number({ description: "With auto: the collection's target" })),
    target_met: Nullable(Type.Boolean({ description: "With auto: whether the estimate's lower bound reaches the target (false before any measurement)" })),
  },
  { description: 'How many candidates were rescored and the recall@10 that keeps' },
);

export function recallView(r: SearchRecall) {
  return {
    multiplier: r.multiplier,
    chosen_by: r.chosenBy,
    estimated_recall_at_10: r.estimate,
    interval: r.low === null || r.high === null ? null : [r.low, r.high],
    measured_queries: r.measured,
    basis: r.basis,
    target_recall: r.target,
    target_met: r.targetMet,
  };
}

const stageQualitySchema = Type.Object({
  auto_multiplier: Type.Integer({ description: 'The multiplier `rescore_multiplier: "auto"` uses now (top_k 10)' }),
  target_met: Type.Boolean({ description: "Whether its lower bound reaches the collection's target_recall" }),
  recall_at_10: Type.Array(
    Type.Object({
      multiplier: Type.Integer(),
      recall: Type.Number({ description: 'Mean share of the exact int8 top 10 among the top 10 after rescoring top_k × multiplier candidates' }),
      low: Type.Number({ description: 'Lower end of the about 95% interval' }),
      high: Type.Number(),
    }),
    { description: 'At multipliers 1 to 20; empty before any measurement' },
  ),
});

export const qualitySchema = Type.Object(
  {
    enabled: Type.Boolean({ description: 'QEMBED_QUALITY_SAMPLE is above 0' }),
    target_recall: Type.Number({ description: 'The recall@10 `auto` aims for (PATCH /collections/{name} sets it)' }),
    basis: basisSchema,
    measured_queries: Type.Integer({ description: 'Measurements the estimates rest on' }),
    pending: Type.Integer({ description: 'Sampled queries (or stand-in documents) waiting for a measurement: new, or measured before the collection changed' }),
    sampled_queries: Type.Integer({ description: 'Query vectors held (a uniform sample of those served; never their texts)' }),
    queries_seen: Type.Integer({ description: 'Queries served since the sample began' }),
    measured_at: Nullable(Type.String({ format: 'date-time', description: 'The newest measurement' })),
    documents_at_measurement: Nullable(Type.Integer({ description: 'The collection size at the newest measurement' })),
    measuring: Nullable(
      Type.Object(
        {
          queries: Type.Integer({ description: 'Queries this measurement ranks exactly' }),
          scanned_documents: Type.Integer({ description: 'Documents its scan has read so far' }),
          documents: Type.Integer({ description: 'Documents the collection held when it began' }),
        },
        { description: 'A measurement running now (it takes a bounded CPU share, QEMBED_QUALITY_CPU_PERCENT), or null' },
      ),
    ),
    first_stages: Type.Object(Object.fromEntries(FIRST_STAGES.map((s) => [s, stageQualitySchema])) as Record<(typeof FIRST_STAGES)[number], typeof stageQualitySchema>),
  },
  {
    description:
      "Recall measured on this collection without labels: the exact int8 top 10 of sampled queries (a full scan, in the background) against each first stage's order (docs/quality.md)",
  },
);

export function qualityView(q: QualityReport) {
  return {
    enabled: q.enabled,
    target_recall: q.targetRecall,
    basis: q.basis,
    measured_queries: q.measured,
    pending: q.pending,
    sampled_queries: q.sampled,
    queries_seen: q.seen,
    measured_at: q.measuredAt,
    documents_at_measurement: q.documentsAtMeasurement,
    measuring: q.measuring && { queries: q.measuring.queries, scanned_documents: q.measuring.scanned, documents: q.measuring.documents },
    first_stages: Object.fromEntries(
      Object.entries(q.firstStages).map(([stage, s]) => [stage, { auto_multiplier: s.autoMultiplier, target_met: s.targetMet, recall_at_10: s.recall }]),
    ) as Record<(typeof FIRST_STAGES)[number], { auto_multiplier: number; target_met: boolean; recall_at_10: { multiplier: number; recall: number; low: number; high: number }[] }>,
  };
}
