/**
 * Evaluation figures kept beside a bundle: `evaluation.json` in the bundle folder, written by
 * `qembed eval --record` and listed by GET /models. A file next to the manifest rather than a
 * manifest field, so recording figures never rewrites the manifest of a bundle being served.
 * The file names the fingerprint it was measured on; figures for another bundle are ignored.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const EVALUATION_FILE = 'evaluation.json';

/** The headline figures of one evaluation (the full report is `qembed eval --out`). */
export interface EvaluationSummary {
  evaluated_at: string;
  documents: number;
  judged_queries: number;
  'float32_ndcg@10': number;
  /** binary+int8 at rescore multiplier 4 (the service's default search), when measured. */
  'binary+int8@4_retention': number | null;
  'binary+int8@4_fidelity@10': number | null;
  binary_retention: number | null;
  'binary_fidelity@10': number | null;
}

export interface EvaluationRecord {
  fingerprint: string;
  /** By dataset name (the collection folder's name). */
  datasets: Record<string, EvaluationSummary>;
}

/** The bundle's recorded figures, or null when there are none for this fingerprint. */
export function readEvaluation(bundleDir: string, fingerprint: string): EvaluationRecord | null {
  const file = path.join(bundleDir, EVALUATION_FILE);
  if (!existsSync(file)) return null;
  try {
    const record = JSON.parse(readFileSync(file, 'utf8')) as EvaluationRecord;
    if (record?.fingerprint !== fingerprint || typeof record.datasets !== 'object' || record.datasets === null) return null;
    return record;
  } catch {
    return null;
  }
}

/** Adds (or replaces) one dataset's figures; written to a temporary file and renamed. */
export function recordEvaluation(bundleDir: string, fingerprint: string, dataset: string, summary: EvaluationSummary): string {
  const record = readEvaluation(bundleDir, fingerprint) ?? { fingerprint, datasets: {} };
  record.datasets[dataset] = summary;
  const file = path.join(bundleDir, EVALUATION_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(record, null, 2)}\n`);
  renameSync(tmp, file);
  return file;
}
