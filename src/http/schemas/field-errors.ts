/**
 * The error a field's bad value gets, declared on the field's schema: a collection name that
 * breaks its pattern is QEMBED_INVALID_COLLECTION_NAME wherever the schema is used (a body, a
 * path), a list of texts that is empty is QEMBED_EMPTY_INPUT. The error handler finds the rule on
 * the schema of the failing keyword or the nearest schema around it, so it knows no route and no
 * field name. Rules live under a symbol: ajv and the OpenAPI document see plain JSON Schema.
 */
import type { TSchema } from 'typebox';
import { errors, type QembedError } from '../../errors.js';

/** What ajv found wrong, as a rule sees it. */
export interface FieldFailure {
  /** Where the bad value is: the request part and the dotted path (`body.documents.3.id`). */
  where: string;
  /** ` key "k"` when a property name (not its value) failed, else empty. */
  key: string;
  /** The JSON Schema keyword that failed (`pattern`, `maxItems` …). */
  keyword: string;
  /** ajv's words for it ("must NOT have more than 64 characters"). */
  message: string;
  /** The keyword's bound (`maxLength`'s limit …), when it has one. */
  limit: unknown;
  /** The message the failure gets without a rule ("body.precision must be one of …"). */
  text: string;
}

export type FieldRule = (failure: FieldFailure) => QembedError;

/** Rules by failing keyword; `*` for any keyword but `required` (a missing property is its object's fault). */
export type FieldRules = Readonly<Record<string, FieldRule>>;

const RULES = Symbol('qembed.fieldRules');

/** `schema` with its rules attached (the same object, so that it stays a TypeBox schema). */
export function withFieldErrors<T extends TSchema>(schema: T, rules: FieldRules): T {
  return Object.assign(schema, { [RULES]: rules });
}

/** The rules declared on `schema`, if any. */
export function fieldRulesOf(schema: unknown): FieldRules | undefined {
  return schema !== null && typeof schema === 'object' ? (schema as { [RULES]?: FieldRules })[RULES] : undefined;
}

/** Any bad value of the field gets `make`'s code; the message ends with `hint` when there is one. */
export const anyBadValue = (make: (message: string) => QembedError, hint = ''): FieldRules => ({
  '*': (f) => make(`${f.where}${f.key} ${f.message}${hint ? ` (${hint})` : ''}`),
});

/** A text the model embeds: empty and too long keep the codes /encode answers. */
export const TEXT_RULES: FieldRules = {
  minLength: (f) => errors.emptyInput(`${f.where} must not be an empty string`),
  maxLength: (f) => errors.inputTooLong(`${f.where} is longer than ${String(f.limit)} characters`),
};

/** A list of inputs (texts, documents, ids): empty and too many keep the codes /encode answers. */
export const INPUT_LIST_RULES: FieldRules = {
  minItems: (f) => errors.emptyInput(`${f.where} must not be empty`),
  maxItems: (f) => errors.tooManyInputs(`${f.where} has more than ${String(f.limit)} items; split the request`),
};

/** An enumerated field whose unknown values have their own code (precision, input_type …). */
export const enumCode = (make: (message: string) => QembedError): FieldRules => ({
  enum: (f) => make(f.text),
});
