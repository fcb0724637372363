/** A model as answers name it. */
import { Type } from 'typebox';

export const modelRefSchema = Type.Object({
  name: Type.String(),
  fingerprint: Type.String({ description: 'Names the model bundle (weights + calibration)' }),
});
