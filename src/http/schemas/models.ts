/** A model as answers name it. */
export const modelRefSchema = {
  type: 'object',
  required: ['name', 'fingerprint'],
  properties: {
    name: { type: 'string' },
    fingerprint: { type: 'string', description: 'Names the model bundle (weights + calibration)' },
  },
} as const;
