/** A metadata filter, as POST /search takes it in its body and GET …/documents in its query: one schema, one validation, one error code. */
import { type Static, type TSchema, Type } from 'typebox';
import { errors } from '../../errors.js';
import { FILTER_KEY_PATTERN, FILTER_MAX_KEYS } from '../../search/search-service.js';
import { anyBadValue, withFieldErrors } from './field-errors.js';

const filterValueSchema = Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()]);

const DESCRIPTION =
  `Equality on top-level metadata keys (up to ${FILTER_MAX_KEYS}, all must match); values are strings, numbers, ` + 'booleans or null, and match the same JSON type only (true does not match 1)';

/** A fresh schema each call (`extra`: keywords of where it is used, `description` added to the common one). */
export function filterSchema(extra: { description?: string } & Record<string, unknown> = {}) {
  const { description, ...keywords } = extra;
  return withFieldErrors(
    // A map of keys to scalar values: TypeBox's Record would say it with patternProperties instead.
    Type.Unsafe<Record<string, Static<typeof filterValueSchema>>>({
      type: 'object',
      maxProperties: FILTER_MAX_KEYS,
      propertyNames: { pattern: FILTER_KEY_PATTERN },
      additionalProperties: filterValueSchema,
      description: description ? `${DESCRIPTION}. ${description}` : DESCRIPTION,
      ...keywords,
    } as TSchema),
    anyBadValue(errors.invalidFilter, 'must map top-level metadata keys (no " or \\) to strings, numbers, booleans or null'),
  );
}
