/** Texts in requests and the limits on them (QEMBED_MAX_INPUTS, QEMBED_MAX_INPUT_CHARS). */

export interface EncodeLimits {
  maxInputs: number;
  maxInputChars: number;
}

export function textSchema(maxChars: number) {
  return { type: 'string', minLength: 1, maxLength: maxChars } as const;
}
