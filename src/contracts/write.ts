/**
 * The contracts/ folder: the JSON Schema files the worker validates against, generated from
 * the schemas declared in src/contracts/ (`npm run contracts`; a test fails when the committed
 * files differ).
 */
import path from 'node:path';
import { projectRoot } from '../paths.js';
import { FitJobSpecSchema } from './fit-job-spec.js';
import { ManifestSchema } from './manifest.js';
import { TrainJobSpecSchema } from './train-job-spec.js';

export const contractsDir = path.join(projectRoot, 'contracts');

/** File name → its text, as committed. */
export function contractFiles(): Record<string, string> {
  // The header first, as a reader opens the file.
  const text = ({ $schema, $id, title, description, ...rest }: { [key: string]: unknown }) => `${JSON.stringify({ $schema, $id, title, description, ...rest }, null, 2)}\n`;
  return {
    'manifest.schema.json': text({ ...ManifestSchema }),
    'train-job-spec.schema.json': text({ ...TrainJobSpecSchema }),
    'fit-job-spec.schema.json': text({ ...FitJobSpecSchema }),
  };
}
