/**
 * The one place where errors become HTTP responses: `{ "error": { "code", "message" } }`.
 * QembedErrors keep their code and status; fastify's body errors get stable qembed codes, and a
 * validation failure the code its field's schema declares (schemas/field-errors.ts), so that this
 * file knows no route; anything else is a 500 whose message is logged, never sent.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errors, QembedError } from '../errors.js';
import { type FieldFailure, fieldRulesOf } from './schemas/field-errors.js';

interface AjvError {
  keyword: string;
  instancePath: string;
  /** The failing keyword's place in the validated schema (`#/properties/documents/items/properties/id/maxLength`). */
  schemaPath: string;
  params?: Record<string, unknown>;
  message?: string;
  /** Set by ajv when a property name (propertyNames) is what failed. */
  propertyName?: string;
}

/** The most telling of ajv's errors: the deepest path, a size or enum keyword over a type one. */
function pickError(list: AjvError[]): AjvError {
  const rank = (e: AjvError) =>
    e.instancePath.split('/').length * 10 + (['minItems', 'maxItems', 'minLength', 'maxLength', 'enum', 'additionalProperties', 'required'].includes(e.keyword) ? 5 : 0) - (e.keyword === 'oneOf' || e.keyword === 'anyOf' ? 20 : 0);
  return list.reduce((best, e) => (rank(e) > rank(best) ? e : best), list[0]!);
}

/**
 * The schemas from `root` down to the one holding the failing keyword, innermost first
 * (`properties` and the like are maps of schemas, not schemas, and carry no rules).
 */
function schemasAlong(root: unknown, schemaPath: string): unknown[] {
  const found = [root];
  let at = root;
  const steps = schemaPath.replace(/^#\/?/, '').split('/').filter(Boolean).slice(0, -1); // the last step is the keyword
  for (const step of steps) {
    if (at === null || typeof at !== 'object') break;
    at = (at as Record<string, unknown>)[decodeURIComponent(step).replace(/~1/g, '/').replace(/~0/g, '~')];
    found.push(at);
  }
  return found.reverse();
}

/** What the failure says without a rule of its field. */
function genericMessage(e: AjvError, where: string): string {
  switch (e.keyword) {
    case 'enum':
      return `${where} must be one of ${(e.params?.allowedValues as unknown[] | undefined)?.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'additionalProperties':
      return `${where} has an unknown property "${String(e.params?.additionalProperty)}"`;
    case 'required':
      return `${where} is missing the required property "${String(e.params?.missingProperty)}"`;
    default:
      return `${where} ${e.message ?? 'is invalid'}`;
  }
}

/**
 * A validation failure as a QembedError: the code the failing field's schema declares for it
 * (schemas/field-errors.ts), else QEMBED_INVALID_REQUEST. `schema` is what the request part
 * (`context`: body, params, querystring) was validated against.
 */
export function validationToQembedError(list: AjvError[], context: string, schema: unknown): QembedError {
  const e = pickError(list);
  const field = e.instancePath.replace(/^\//, '').replace(/\//g, '.');
  const where = field ? `${context}.${field}` : context;
  const failure: FieldFailure = {
    where,
    key: e.propertyName !== undefined ? ` key ${JSON.stringify(e.propertyName)}` : '',
    keyword: e.keyword,
    message: e.message ?? 'is invalid',
    limit: e.params?.limit,
    text: genericMessage(e, where),
  };
  const rule = schemasAlong(schema, e.schemaPath)
    .map(fieldRulesOf)
    .map((rules) => rules?.[e.keyword] ?? (e.keyword === 'required' ? undefined : rules?.['*']))
    .find((r) => r !== undefined);
  const q = rule ? rule(failure) : errors.invalidRequest(failure.text);
  // The compatible APIs name the field at fault (OpenAI's `param`): the top-level one.
  const top = e.instancePath.split('/')[1] || (e.params?.missingProperty as string | undefined);
  return top && q.details.field === undefined ? new QembedError(q.code, q.statusCode, q.message, { ...q.details, field: top }) : q;
}

const FASTIFY_CODES: Record<string, (message: string) => QembedError> = {
  FST_ERR_CTP_INVALID_JSON_BODY: () => errors.malformedJson('the request body is not valid JSON'),
  FST_ERR_CTP_EMPTY_JSON_BODY: () => errors.malformedJson('the request body is empty; send a JSON object'),
  FST_ERR_CTP_BODY_TOO_LARGE: (m) => errors.bodyTooLarge(`the request body is too large (${m})`),
  FST_ERR_CTP_INVALID_MEDIA_TYPE: () => errors.unsupportedMediaType('send the body as application/json'),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: () => errors.invalidRequest('the Content-Length header does not match the body'),
};

/** Any error as a QembedError; `schemas` are the route's (body, params …), for validation errors. */
export function toQembedError(error: FastifyError | Error, schemas: Record<string, unknown> = {}): QembedError {
  if (error instanceof QembedError) return error;
  const fe = error as FastifyError & { validation?: AjvError[]; validationContext?: string };
  if (fe.validation) {
    const context = fe.validationContext ?? 'body';
    return validationToQembedError(fe.validation, context, schemas[context]);
  }
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
    const q = toQembedError(error, request.routeOptions.schema as Record<string, unknown> | undefined);
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
