/**
 * Optional API key: with QEMBED_API_KEY set, every route but /health and the console's static files
 * (which hold no data: the console asks for the key and sends it on every API call) needs
 * `Authorization: Bearer <key>`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { errors } from '../../errors.js';
import { isConsoleAsset } from './console.js';

const OPEN_ROUTES = new Set(['/health']);
const digest = (s: string) => createHash('sha256').update(s).digest();

export function apiKeyAuth(app: FastifyInstance, apiKey: string | undefined): void {
  if (!apiKey) return;
  const expected = digest(apiKey);
  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?')[0]!;
    if (OPEN_ROUTES.has(path) || isConsoleAsset(path)) return;
    const header = request.headers.authorization ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    // Comparing digests keeps the comparison constant-time whatever the lengths.
    if (match && timingSafeEqual(digest(match[1]!.trim()), expected)) return;
    void reply.header('www-authenticate', 'Bearer realm="qembed"');
    throw errors.unauthorized(match ? 'the API key is not valid' : 'this service needs an API key: send Authorization: Bearer <key>');
  });
}
