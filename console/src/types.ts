/** The parts of the API's answers the console reads (openapi/openapi.json has them whole). */

export interface RecallPoint {
  multiplier: number;
  recall: number;
  low: number;
  high: number;
}

export interface FirstStageQuality {
  auto_multiplier: number;
  target_met: boolean;
  recall_at_10: RecallPoint[];
}

export type FirstStage = 'hamming' | 'asymmetric';

export interface Collection {
  name: string;
  fingerprint: string;
  dimension: number;
  code_bits: number;
  created_at: string;
  documents: number;
  disk_bytes: number;
  memory_bytes: number | null;
  reencode?: { target_fingerprint: string; done: number; total: number; last_error: string | null } | null;
  model?: { state: 'served' | 'stale'; searchable: boolean; action?: string };
  quality?: {
    enabled: boolean;
    target_recall: number;
    basis: 'queries' | 'documents' | null;
    measured_queries: number;
    sampled_queries: number;
    measured_at: string | null;
    measuring: { queries: number; scanned_documents: number; documents: number } | null;
    first_stages: Record<FirstStage, FirstStageQuality>;
  };
  transform?: {
    served: string | null;
    available: { fingerprint: string; method: string; bits: number; created_at: string; summary: Record<string, unknown> }[];
    switching: { target: string; policy: string; phase: string; done: number; total: number; last_error: string | null } | null;
  };
}

export interface Job {
  id: string;
  state: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  progress: number;
  step: number | null;
  total_steps: number | null;
  loss: number | null;
  message: string | null;
  cancel_requested: boolean;
  spec: Record<string, unknown>;
  result: Record<string, unknown> | null;
  collection?: string;
}

export interface ModelInfo {
  name: string;
  fingerprint: string;
  dir: string;
  dimension?: number;
  binary_code_bits?: number[];
  weights?: string;
  created_at?: string | null;
  evaluation?: Record<string, unknown> | null;
  training?: Record<string, unknown> | null;
  active: boolean;
  loaded: boolean;
  problem?: string;
}

export interface Health {
  status: 'ok' | 'degraded' | 'unavailable';
  problems: string[];
  queue_depth: number;
  model?: {
    name: string;
    fingerprint: string;
    dimension: number;
    max_tokens: number;
    weights: string;
    execution_provider: string;
    chosen_by: string;
    choice?: {
      measured_at: string;
      threads: number;
      chosen: { dir: string; fingerprint: string };
      candidates: { dir: string; weights: string; texts_per_second: { calls_of_1: number; calls_of_32: number } | null; eligible: boolean; problem?: string }[];
    };
  };
  cpu?: { model: string; arch: string; cpus: number };
}

export interface Hit {
  id: string;
  score: number;
  text: string | null;
  metadata: Record<string, unknown>;
}

export interface SearchAnswer {
  hits: Hit[];
  stats: {
    documents_scanned: number;
    candidates: number;
    candidates_rescored: number;
    encode_ms: number;
    filter_ms: number;
    first_stage_ms: number;
    rescore_ms: number;
  };
  recall: {
    multiplier: number | null;
    chosen_by: 'request' | 'auto' | 'exact';
    estimated_recall_at_10: number | null;
    interval: [number, number] | null;
    measured_queries: number;
    basis: string | null;
  };
}

export interface DocumentPage {
  documents: { id: string; text: string | null; metadata: Record<string, unknown>; updated_at: string }[];
  next: string | null;
  total: number;
}

export const PRECISIONS = ['float32', 'int8', 'uint8', 'binary', 'ubinary'] as const;
export type Precision = (typeof PRECISIONS)[number];
