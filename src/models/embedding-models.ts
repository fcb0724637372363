/**
 * The models a request may name to embed with (POST /v1/embeddings, POST /v2/embed): the served
 * one only, as one encoder serves at a time. GET /v1/models lists exactly these, so that a client
 * taking the first model listed (the usual way to find one) gets a model that embeds.
 */
import { namesBundle } from '../encoder/bundle.js';
import type { Encoder } from '../encoder/encoder.js';
import { errors } from '../errors.js';
import type { ModelInfo } from './registry.js';

export interface EmbeddingModel {
  /** How to name it: the bundle's name, or its fingerprint when another bundle has that name too. */
  id: string;
  name: string;
  fingerprint: string;
  dimension: number;
  createdAt: string | null;
}

/** The models `model` may name, served first; `bundles` (the registry's) only decide the ids. */
export function embeddingModels(served: Encoder, bundles: readonly ModelInfo[] = []): EmbeddingModel[] {
  const { name, created_at: createdAt = null } = served.bundle.manifest;
  const shared = bundles.some((b) => b.fingerprint !== '' && b.fingerprint !== served.fingerprint && b.name === name);
  return [{ id: shared ? served.fingerprint : name, name, fingerprint: served.fingerprint, dimension: served.dimension, createdAt }];
}

/** The served encoder, when `model` names it (its bundle name or fingerprint); else 404 QEMBED_MODEL_NOT_FOUND. */
export function embeddingEncoder(served: Encoder, model: string): Encoder {
  if (namesBundle(served.bundle, model)) return served;
  throw errors.modelNotFound(
    `the model "${model}" is not served here; this service embeds with "${served.bundle.manifest.name}" (fingerprint ${served.fingerprint}); GET /v1/models lists it`,
    { field: 'model' },
  );
}
