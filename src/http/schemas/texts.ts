/** Texts in requests and the limits on them (QEMBED_MAX_INPUTS, QEMBED_MAX_INPUT_CHARS). */
import { type TSchema, Type } from 'typebox';
import { INPUT_LIST_RULES, TEXT_RULES, withFieldErrors } from './field-errors.js';

export interface EncodeLimits {
  maxInputs: number;
  maxInputChars: number;
}

/** A text of 1 to `maxChars` characters (empty: QEMBED_EMPTY_INPUT; too long: QEMBED_INPUT_TOO_LONG). */
export function textSchema(maxChars: number, options: { description?: string } = {}) {
  return withFieldErrors(Type.String({ minLength: 1, maxLength: maxChars, ...options }), TEXT_RULES);
}

/** A list of 1 to `maxItems` inputs (empty: QEMBED_EMPTY_INPUT; too many: QEMBED_TOO_MANY_INPUTS). */
export function inputListSchema<T extends TSchema>(items: T, maxItems: number, options: { description?: string } = {}) {
  return withFieldErrors(Type.Array(items, { minItems: 1, maxItems, ...options }), INPUT_LIST_RULES);
}
