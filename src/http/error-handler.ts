/**
 * The one place where errors become HTTP responses: `{ "error": { "code", "message" } }`.
 * QembedErrors keep their code and status; fastify's body and validation errors get stable
 * qembed codes; anything else is a 500 whose message is logged, never sent.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errors, QembedError } from '../errors.js';

interface AjvError {
  keyword: string;
  instancePath: string;
  params?: Record<string, unknown>;
  message?: string;
  /** Set by ajv when a property name (propertyNames) is what failed. */
  propertyName?: string;
}

type Factory = (message: string) => QembedError;

/** Enumerated fields whose bad values get their own code. */
const ENUM_CODES: Record<string, Factory> = {
  precision: errors.unknownPrecision,
  input_type: errors.unknownInputType,
  encoding: errors.unknownEncoding,
};

/**
 * Fields whose bad values get their own code, whatever the violated keyword, matched on the
 * dotted path (`documents.3.metadata`) within the validation context (body, params).
 */
const FIELD_CODES: [RegExp, Factory, string][] = [
  [/^(name|collection)$/, errors.invalidCollectionName, 'must be 1 to 64 characters from A-Z a-z 0-9 _ . -, not starting with . or -'],
  [/^(id|documents\.\d+\.id|ids\.\d+)$/, errors.invalidDocumentId, 'must be a string of 1 to 256 characters, none of them U+0000'],
  [/^documents\.\d+\.metadata(\.|$)/, errors.invalidMetadata, 'must be a JSON object'],
  [/^filter(\.|$)/, errors.invalidFilter, 'must map top-level metadata keys (no " or \\) to strings, numbers, booleans or null'],
  [/^vector(\.|$)/, errors.invalidVector, 'must be an array of numbers'],
  [/^documents\.\d+\.vector(\.|$)/, errors.invalidVector, 'must be an array of numbers or base64 of little-endian float32'],
  [/^top_k$/, errors.invalidTopK, ''],
  [/^rescore_multiplier$/, errors.invalidRescoreMultiplier, ''],
];

/** The same fields on the training-job routes name a job or a bundle, not a collection or document. */
const JOB_FIELD_CODES: [RegExp, Factory, string][] = [
  [/^name$/, errors.invalidJobName, 'the new bundle\'s name: 1 to 64 characters from A-Z a-z 0-9 _ . -'],
  [/^id$/, errors.invalidJobId, 'a job id as POST /train-jobs returned it'],
];

/** The most telling of ajv's errors: the deepest path, a size or enum keyword over a type one. */
function pickError(list: AjvError[]): AjvError {
  const rank = (e: AjvError) =>
    e.instancePath.split('/').length * 10 + (['minItems', 'maxItems', 'minLength', 'maxLength', 'enum', 'additionalProperties', 'required'].includes(e.keyword) ? 5 : 0) - (e.keyword === 'oneOf' || e.keyword === 'anyOf' ? 20 : 0);
  return list.reduce((best, e) => (rank(e) > rank(best) ? e : best), list[0]!);
}

export function validationToQembedError(list: AjvError[], context: string, route = ''): QembedError {
  const q = validationError(list, context, route);
  const field = pickError(list).instancePath.split('/')[1] || (pickError(list).params?.missingProperty as string | undefined);
  return field && q.details.field === undefined ? new QembedError(q.code, q.statusCode, q.message, { ...q.details, field }) : q;
}

function validationError(list: AjvError[], context: string, route: string): QembedError {
  const e = pickError(list);
  const field = e.instancePath.replace(/^\//, '').replace(/\//g, '.');
  const where = field ? `${context}.${field}` : context;
  const top = field.split('.')[0] ?? '';
  const isInputs = top === 'inputs' || top === 'documents' || top === 'query' || top === 'ids';
  // Sizes of lists and texts keep the codes /encode uses (empty input, too many, too long).
  const sizeLimit = ['minItems', 'maxItems'].includes(e.keyword) && isInputs && !field.includes('.');
  const textLimit = ['minLength', 'maxLength'].includes(e.keyword) && (top === 'inputs' || top === 'query' || field.endsWith('text'));
  const codes = route.startsWith('/train-jobs') ? JOB_FIELD_CODES : FIELD_CODES;
  const fieldCode = e.keyword === 'required' || sizeLimit || textLimit ? undefined : codes.find(([re]) => re.test(field));
  if (fieldCode) {
    const [, make, hint] = fieldCode;
    const key = e.propertyName !== undefined ? ` key ${JSON.stringify(e.propertyName)}` : '';
    return make(`${where}${key} ${e.message ?? 'is invalid'}${hint ? ` (${hint})` : ''}`);
  }
  switch (e.keyword) {
    case 'minItems':
      if (isInputs) return errors.emptyInput(`${where} must not be empty`);
      break;
    case 'maxItems':
      if (isInputs) return errors.tooManyInputs(`${where} has more than ${String(e.params?.limit)} items; split the request`);
      break;
    case 'minLength':
      if (isInputs || field.endsWith('text')) return errors.emptyInput(`${where} must not be an empty string`);
      break;
    case 'maxLength':
      if (isInputs || field.endsWith('text')) return errors.inputTooLong(`${where} is longer than ${String(e.params?.limit)} characters`);
      break;
    case 'enum': {
      const allowed = (e.params?.allowedValues as unknown[] | undefined)?.map((v) => JSON.stringify(v)).join(', ');
      return (ENUM_CODES[top] ?? errors.invalidRequest)(`${where} must be one of ${allowed}`);
    }
    case 'additionalProperties':
      return errors.invalidRequest(`${where} has an unknown property "${String(e.params?.additionalProperty)}"`);
    case 'required':
      return errors.invalidRequest(`${where} is missing the required property "${String(e.params?.missingProperty)}"`);
    case 'oneOf':
    case 'anyOf':
      if (isInputs) return errors.invalidRequest(`${where} must be a non-empty string or a list of non-empty strings`);
      break;
  }
  return errors.invalidRequest(`${where} ${e.message ?? 'is invalid'}`);
}

const FASTIFY_CODES: Record<string, (message: string) => QembedError> = {
  FST_ERR_CTP_INVALID_JSON_BODY: () => errors.malformedJson('the request body is not valid JSON'),
  FST_ERR_CTP_EMPTY_JSON_BODY: () => errors.malformedJson('the request body is empty; send a JSON object'),
  FST_ERR_CTP_BODY_TOO_LARGE: (m) => errors.bodyTooLarge(`the request body is too large (${m})`),
  FST_ERR_CTP_INVALID_MEDIA_TYPE: () => errors.unsupportedMediaType('send the body as application/json'),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: () => errors.invalidRequest('the Content-Length header does not match the body'),
};

export function toQembedError(error: FastifyError | Error, route = ''): QembedError {
  if (error instanceof QembedError) return error;
  const fe = error as FastifyError & { validation?: AjvError[]; validationContext?: string };
  if (fe.validation) return validationToQembedError(fe.validation, fe.validationContext ?? 'body', route);
  const mapped = fe.code ? FASTIFY_CODES[fe.code] : undefined;
  if (mapped) return mapped(fe.message);
  if (error instanceof SyntaxError || (fe.statusCode === 400 && /JSON/i.test(fe.message))) {
    return errors.malformedJson(`the request body is not valid JSON (${fe.message})`);
  }
  if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) return new QembedError(errors.invalidRequest('').code, fe.statusCode, fe.message);
  // Storage errors that no store method turned into a QembedError (better-sqlite3 codes).
  const sqlite = (error as { code?: unknown }).code;
  if (sqlite === 'SQLITE_FULL') return errors.storageFull('the database cannot grow; free disk space, then retry');
  if (typeof sqlite === 'string' && sqlite.startsWith('SQLITE_IOERR')) return errors.storageError(`the database could not read or write its file (${sqlite}); retry later`);
  return errors.internal('internal error; see the server log for the request id');
}

/** The response headers an error's details call for. */
export function headersOf(e: QembedError): Record<string, string> {
  const headers: Record<string, string> = {};
  if (e.details.retryAfterSeconds !== undefined) headers['retry-after'] = String(e.details.retryAfterSeconds);
  if (e.details.allowedMethods) headers.allow = e.details.allowedMethods.join(', ');
  return headers;
}

/** An error handler that logs the error and answers it with `send` (the API's error shape). */
export function errorHandlerFor(send: (reply: FastifyReply, q: QembedError) => void) {
  return (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void => {
    const q = toQembedError(error, request.routeOptions.url ?? '');
    if (q.statusCode >= 500) request.log.error({ err: error }, 'request failed');
    else request.log.info({ code: q.code, status: q.statusCode }, q.message);
    send(reply, q);
  };
}

export const errorHandler = errorHandlerFor((reply, q) => void reply.code(q.statusCode).headers(headersOf(q)).send({ error: { code: q.code, message: q.message } }));

/** Within a plugin (a compatible API under its prefix): errors and unknown routes in its shape. */
export function answerErrorsAs(app: FastifyInstance, send: (reply: FastifyReply, q: QembedError) => void): void {
  app.setErrorHandler(errorHandlerFor(send));
  app.setNotFoundHandler((request, reply) => send(reply, app.unmatchedRoute(request.method, request.url)));
}

declare module 'fastify' {
  interface FastifyInstance {
    /** What answers a request no route matched: 405 with the allowed methods when its path has routes, else 404 (trackRoutes). */
    unmatchedRoute(method: string, url: string): QembedError;
  }
}

/**
 * Keeps the table of routes as they are added (call it before registering any), and decorates
 * `app`, and so every plugin inside it, with `unmatchedRoute`: every error shape answers a
 * wrong method on an existing path with the same 405 and Allow header.
 */
export function trackRoutes(app: FastifyInstance): void {
  const routes: { method: string; pattern: RegExp }[] = [];
  app.addHook('onRoute', (route) => {
    const pattern = new RegExp(`^${route.url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:[A-Za-z_]+/g, '[^/]+')}/?$`);
    for (const method of [route.method].flat()) routes.push({ method, pattern });
  });
  app.decorate('unmatchedRoute', (method: string, url: string): QembedError => {
    const where = url.split('?')[0]!;
    const allowed = [...new Set(routes.filter((r) => r.pattern.test(where) && r.method !== 'HEAD').map((r) => r.method))];
    return allowed.length > 0
      ? errors.methodNotAllowed(`${method} is not allowed on ${where}; use ${allowed.join(' or ')}`, { allowedMethods: allowed })
      : errors.routeNotFound(`no route ${method} ${where}`);
  });
}
