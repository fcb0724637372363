/** The error response every route shares, and the error statuses a route declares. */
import { type Static, Type, type TUnsafe } from 'typebox';

export const errorResponseSchema = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ example: 'QEMBED_EMPTY_INPUT' }),
      message: Type.String(),
    }),
  },
  { $id: 'ErrorResponse', description: 'Every 4xx/5xx response. `code` is stable (QEMBED_…); `message` is for humans.' },
);

type ErrorBody = Static<typeof errorResponseSchema>;

const describe: Record<number, string> = {
  400: 'Invalid request (malformed JSON, schema violation, empty input, unknown precision …)',
  401: 'Missing or wrong API key',
  404: 'Not found',
  409: 'Conflict with the current state (e.g. a collection bound to another model)',
  413: 'Too large: body, number of inputs, or a text past the model limit with truncate=false',
  405: 'Method not allowed on this path (the Allow header lists those that are)',
  415: 'Body is not application/json',
  429: 'The model queue is full; retry after the Retry-After header',
  503: 'Not ready, shutting down, or the database unavailable (retry after the Retry-After header)',
};

/**
 * Response entries for the given error statuses, each described. 503 is always added: any
 * route answers it to new requests while the service shuts down.
 */
export function errorResponses<const S extends number>(...given: S[]): Record<S | 503, TUnsafe<ErrorBody>> {
  const statuses = [...new Set([...given, 503])];
  return Object.fromEntries(statuses.map((s) => [s, Type.Unsafe<ErrorBody>({ description: describe[s] ?? 'Error', $ref: 'ErrorResponse#' })])) as Record<S | 503, TUnsafe<ErrorBody>>;
}
