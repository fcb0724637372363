/** Texts in requests and the limits on them (QEMBED_MAX_INPUTS, QEMBED_MAX_INPUT_CHARS). */
import { Type } from 'typebox';

export interface EncodeLimits {
  maxInputs: number;
  maxInputChars: number;
}

/** A text of 1 to `maxChars` characters. */
export function textSchema(maxChars: number, options: { description?: string } = {}) {
  return Type.String({ minLength: 1, maxLength: maxChars, ...options });
}
