/**
 * The few JSON Schema forms the routes use that TypeBox does not write the way the API always
 * has (a string enum, OpenAPI's `nullable`, a free JSON object): the same JSON Schema as before,
 * with the TypeScript type TypeBox derives for it.
 */
import { type Static, type TSchema, Type, type TUnsafe } from 'typebox';

/** A string from `values`: `{ type: 'string', enum }` (TypeBox's own enum has no `type`). */
export function StringEnum<const T extends readonly string[]>(values: T, options: object = {}): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

/** `schema` or null, as OpenAPI 3.0 says it (`nullable: true`; ajv knows the keyword). */
export function Nullable<T extends TSchema>(schema: T): TUnsafe<Static<T> | null> {
  return Type.Unsafe<Static<T> | null>({ ...schema, nullable: true });
}

/**
 * Any JSON object (metadata, a training summary …): `{ type: 'object', additionalProperties: true }`.
 * `T` narrows the TypeScript side only, for answers built from a typed record.
 */
export function JsonObject<T extends object = Record<string, unknown>>(options: object = {}): TUnsafe<T> {
  return Type.Unsafe<T>({ type: 'object', additionalProperties: true, ...options });
}

/** Exactly one of `schemas` (TypeBox's Union writes anyOf). */
export function OneOf<const T extends readonly TSchema[]>(schemas: T, options: object = {}): TUnsafe<Static<T[number]>> {
  return Type.Unsafe<Static<T[number]>>({ oneOf: [...schemas], ...options });
}
