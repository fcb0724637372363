/** QEMBED_DATABASE_URL: every connection string form libpq and node-postgres accept. */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { clientConfig, describeDatabase } from '../../src/database-url.mjs';

describe('QEMBED_DATABASE_URL', () => {
  it.each([
    ['postgres://me:secret@db.example:5433/qembed', { host: 'db.example', port: 5433, user: 'me', password: 'secret', database: 'qembed' }],
    ['postgresql://me@db.example/qembed?sslmode=disable', { host: 'db.example', port: 5432, user: 'me', database: 'qembed', ssl: false }],
    // libpq's socket folder as a parameter, with an empty password: what embedded-postgres prints.
    ['postgresql://postgres:@/qembed?host=/run/pg-sock', { host: '/run/pg-sock', port: 5432, user: 'postgres', database: 'qembed' }],
    ['postgresql:///qembed?host=/run/pg-sock&port=6000', { host: '/run/pg-sock', port: 6000, database: 'qembed' }],
    ['postgresql://%2Frun%2Fpg-sock/qembed', { host: '/run/pg-sock', database: 'qembed' }],
    ['postgresql://me@/?host=/run/pg-sock&dbname=qembed', { host: '/run/pg-sock', user: 'me', database: 'qembed' }],
    ['socket:/run/pg-sock?db=qembed', { host: '/run/pg-sock', database: 'qembed' }],
    ["host=/run/pg-sock port=6000 dbname='my db' user=me connect_timeout=3", { host: '/run/pg-sock', port: 6000, database: 'my db', user: 'me', connectionTimeoutMillis: 3000 }],
    ['postgres://[::1]:5433/qembed', { host: '::1', port: 5433, database: 'qembed' }],
  ])('reads %s', (url, expected) => {
    expect(clientConfig(url)).toMatchObject(expected);
    expect(() => loadConfig({ QEMBED_DATABASE_URL: url })).not.toThrow();
  });

  it.each([
    ['mysql://me@db/qembed', /PostgreSQL URL: expected postgres:\/\//],
    ['postgres://h1,h2/qembed', /several hosts/],
    ['postgres://db.example:99999/qembed', /PostgreSQL URL/],
    ['host=/run/pg-sock dbname', /expected key=value/],
  ])('refuses %s at start, saying why', (url, message) => {
    expect(() => loadConfig({ QEMBED_DATABASE_URL: url })).toThrow(message);
  });

  it('is logged without its password', () => {
    const said = describeDatabase('postgres://me:secret@db.example:5433/qembed');
    expect(said).toBe('postgres me@db.example:5433, database qembed');
    expect(describeDatabase('postgresql://postgres:@/qembed?host=/run/pg-sock')).toBe('postgres postgres@socket /run/pg-sock/.s.PGSQL.5432, database qembed');
  });
});
