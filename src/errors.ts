/**
 * The error catalogue: every code the service can answer, with its status, and nowhere else.
 * Domain code throws `QembedError`s made by the factories below; the HTTP layer
 * (http/error-handler.ts) turns them into `{ "error": { "code", "message" } }` with their status
 * and, from the details, headers. Codes never change once published: clients switch on them.
 */

/** Facts a client may act on besides the message; the HTTP layer turns them into headers. */
export interface ErrorDetails {
  /** Seconds after which a retry may succeed (Retry-After). */
  retryAfterSeconds?: number;
  /** Methods the resource accepts (Allow). */
  allowedMethods?: readonly string[];
  /** The request field at fault (the compatible APIs report it, e.g. OpenAI's `param`). */
  field?: string;
}

export class QembedError extends Error {
  override name = 'QembedError';
  constructor(
    readonly code: string,
    readonly statusCode: number,
    message: string,
    readonly details: ErrorDetails = {},
  ) {
    super(message);
  }
}

const make = (code: string, status: number) => (message: string, details?: ErrorDetails) => new QembedError(code, status, message, details);

/** Every error code the API can return, with its HTTP status. */
export const errors = {
  invalidRequest: make('QEMBED_INVALID_REQUEST', 400),
  malformedJson: make('QEMBED_MALFORMED_JSON', 400),
  forbiddenProperty: make('QEMBED_FORBIDDEN_PROPERTY', 400),
  badUrl: make('QEMBED_BAD_URL', 400),
  unsupportedMediaType: make('QEMBED_UNSUPPORTED_MEDIA_TYPE', 415),
  emptyInput: make('QEMBED_EMPTY_INPUT', 400),
  tooManyInputs: make('QEMBED_TOO_MANY_INPUTS', 413),
  inputTooLong: make('QEMBED_INPUT_TOO_LONG', 413),
  bodyTooLarge: make('QEMBED_BODY_TOO_LARGE', 413),
  requestTimeout: make('QEMBED_REQUEST_TIMEOUT', 408),
  headersTooLarge: make('QEMBED_HEADERS_TOO_LARGE', 431),
  queueFull: make('QEMBED_QUEUE_FULL', 429),
  unauthorized: make('QEMBED_UNAUTHORIZED', 401),
  notFound: make('QEMBED_NOT_FOUND', 404),
  routeNotFound: make('QEMBED_ROUTE_NOT_FOUND', 404),
  methodNotAllowed: make('QEMBED_METHOD_NOT_ALLOWED', 405),
  unknownPrecision: make('QEMBED_UNKNOWN_PRECISION', 400),
  unknownInputType: make('QEMBED_UNKNOWN_INPUT_TYPE', 400),
  unknownEncoding: make('QEMBED_UNKNOWN_ENCODING', 400),
  invalidCollectionName: make('QEMBED_INVALID_COLLECTION_NAME', 400),
  invalidJobName: make('QEMBED_INVALID_JOB_NAME', 400),
  invalidJobId: make('QEMBED_INVALID_JOB_ID', 400),
  invalidJob: make('QEMBED_INVALID_JOB', 400),
  jobNotFound: make('QEMBED_JOB_NOT_FOUND', 404),
  pathOutsideRoot: make('QEMBED_PATH_OUTSIDE_ROOT', 400),
  datasetNotFound: make('QEMBED_DATASET_NOT_FOUND', 404),
  invalidDocumentId: make('QEMBED_INVALID_DOCUMENT_ID', 400),
  duplicateDocumentId: make('QEMBED_DUPLICATE_DOCUMENT_ID', 400),
  invalidMetadata: make('QEMBED_INVALID_METADATA', 400),
  invalidFilter: make('QEMBED_INVALID_FILTER', 400),
  /** A listing's `after` that is not a cursor the listing of this collection gave. */
  invalidCursor: make('QEMBED_INVALID_CURSOR', 400),
  invalidVector: make('QEMBED_INVALID_VECTOR', 400),
  unsupportedCodeBits: make('QEMBED_UNSUPPORTED_CODE_BITS', 400),
  invalidDimensions: make('QEMBED_INVALID_DIMENSIONS', 400),
  tokenInputs: make('QEMBED_TOKEN_INPUTS', 400),
  unsupportedTruncation: make('QEMBED_UNSUPPORTED_TRUNCATION', 400),
  invalidTopK: make('QEMBED_INVALID_TOP_K', 400),
  invalidRescoreMultiplier: make('QEMBED_INVALID_RESCORE_MULTIPLIER', 400),
  invalidTargetRecall: make('QEMBED_INVALID_TARGET_RECALL', 400),
  exactSearchTooLarge: make('QEMBED_EXACT_SEARCH_TOO_LARGE', 400),
  collectionNotFound: make('QEMBED_COLLECTION_NOT_FOUND', 404),
  transformNotFound: make('QEMBED_TRANSFORM_NOT_FOUND', 404),
  /** A transform that cannot serve the collection: another code length or dimension, an artifact that does not hold its length. */
  transformMismatch: make('QEMBED_TRANSFORM_MISMATCH', 409),
  invalidTransform: make('QEMBED_INVALID_TRANSFORM', 400),
  /** A fit of a collection with too few documents to fit on. */
  collectionTooSmall: make('QEMBED_COLLECTION_TOO_SMALL', 409),
  collectionExists: make('QEMBED_COLLECTION_EXISTS', 409),
  documentNotFound: make('QEMBED_DOCUMENT_NOT_FOUND', 404),
  modelMismatch: make('QEMBED_MODEL_MISMATCH', 409),
  modelNotFound: make('QEMBED_MODEL_NOT_FOUND', 404),
  conflict: make('QEMBED_CONFLICT', 409),
  unavailable: make('QEMBED_UNAVAILABLE', 503),
  consoleNotBuilt: make('QEMBED_CONSOLE_NOT_BUILT', 503),
  storageFull: make('QEMBED_STORAGE_FULL', 507),
  storageError: make('QEMBED_STORAGE_ERROR', 503),
  databaseUnavailable: make('QEMBED_DATABASE_UNAVAILABLE', 503),
  shuttingDown: make('QEMBED_SHUTTING_DOWN', 503),
  internal: make('QEMBED_INTERNAL', 500),
} as const;

export type ErrorCode = ReturnType<(typeof errors)[keyof typeof errors]>['code'];
