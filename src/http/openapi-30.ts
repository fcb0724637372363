/**
 * Route schemas are JSON Schema (what ajv validates); the OpenAPI 3.0.3 document allows only its
 * own dialect of it. This rewrites the few JSON Schema forms the routes use into their OpenAPI
 * 3.0 equivalents, so that the document @fastify/swagger serves and the committed
 * openapi/openapi.json validate as OpenAPI (test/unit/openapi.test.ts):
 *
 * - `exclusiveMinimum: n` (a number) → `minimum: n, exclusiveMinimum: true` (and for maximum);
 * - `type: [T, "null"]` → `type: T, nullable: true`;
 * - `const: v` → `enum: [v]`;
 * - `propertyNames` (not in OpenAPI 3.0) → dropped, its pattern said in the description.
 */

type Json = unknown;

function rewriteSchema(schema: Record<string, Json>): void {
  for (const [bound, flag] of [
    ['exclusiveMinimum', 'minimum'],
    ['exclusiveMaximum', 'maximum'],
  ] as const) {
    if (typeof schema[bound] === 'number') {
      schema[flag] = schema[bound];
      schema[bound] = true;
    }
  }
  if (Array.isArray(schema.type)) {
    const types = schema.type.filter((t) => t !== 'null');
    if (types.length === 1) {
      if (types.length < schema.type.length) schema.nullable = true;
      schema.type = types[0];
    }
  }
  if ('const' in schema) {
    schema.enum = [schema.const];
    delete schema.const;
  }
  if (schema.propertyNames && typeof schema.propertyNames === 'object') {
    const names = schema.propertyNames as { pattern?: string };
    const rule = names.pattern ? `Keys must match ${names.pattern}.` : 'Keys are restricted.';
    schema.description = schema.description ? `${String(schema.description)} ${rule}` : rule;
    delete schema.propertyNames;
  }
}

/** Rewrites every schema object inside an OpenAPI document, in place; returns the document. */
export function toOpenApi30<T>(document: T): T {
  const seen = new Set<object>();
  const walk = (value: Json): void => {
    if (value === null || typeof value !== 'object' || seen.has(value)) return;
    seen.add(value);
    if (Array.isArray(value)) {
      for (const item of value) walk(item);
      return;
    }
    const object = value as Record<string, Json>;
    // A schema, not a `properties` map that happens to have a property named "type".
    const typed = typeof object.type === 'string' || (Array.isArray(object.type) && object.type.every((t) => typeof t === 'string'));
    if (typed || 'exclusiveMinimum' in object || 'const' in object || 'propertyNames' in object) rewriteSchema(object);
    for (const child of Object.values(object)) walk(child);
  };
  walk(document);
  return document;
}
