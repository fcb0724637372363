/**
 * The reliability catalogue: bad requests across every route, each answered with its 4xx
 * status, its stable code in the error envelope, and no change to the service's state
 * (collections, documents, training jobs, the served model). Adding a route means adding
 * its bad requests here.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { bundleCopy } from '../helpers/bundles.js';

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';

interface BadRequest {
  what: string;
  method: Method;
  url: string;
  /** A JSON value (serialized), or raw text sent as is. */
  body?: unknown;
  raw?: string;
  contentType?: string;
  status: number;
  code: string;
}

const models = mkdtempSync(path.join(tmpdir(), 'qembed-models-'));
const datasets = mkdtempSync(path.join(tmpdir(), 'qembed-datasets-'));
const other = bundleCopy((m) => (m.calibration.max = m.calibration.max.map((x) => x + 0.05)), { parent: models, name: 'other' });
mkdirSync(path.join(datasets, 'tiny', 'qrels'), { recursive: true });
writeFileSync(path.join(datasets, 'tiny', 'corpus.jsonl'), '{"_id": "1", "text": "a passage"}\n');

const long = (n: number) => 'x'.repeat(n);
const nested = (depth: number): string => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
const docs = (items: unknown[]) => ({ documents: items });

const CATALOGUE: BadRequest[] = [
  // POST /encode
  { what: 'body is not JSON', method: 'POST', url: '/encode', raw: '{"inputs": "a"', status: 400, code: 'QEMBED_MALFORMED_JSON' },
  { what: 'empty body', method: 'POST', url: '/encode', raw: '', status: 400, code: 'QEMBED_MALFORMED_JSON' },
  { what: 'text/plain body', method: 'POST', url: '/encode', raw: 'hello', contentType: 'text/plain', status: 415, code: 'QEMBED_UNSUPPORTED_MEDIA_TYPE' },
  { what: 'a JSON array instead of an object', method: 'POST', url: '/encode', body: ['a'], status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'inputs missing', method: 'POST', url: '/encode', body: {}, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'empty string input', method: 'POST', url: '/encode', body: { inputs: '' }, status: 400, code: 'QEMBED_EMPTY_INPUT' },
  { what: 'empty list of inputs', method: 'POST', url: '/encode', body: { inputs: [] }, status: 400, code: 'QEMBED_EMPTY_INPUT' },
  { what: 'numbers as inputs', method: 'POST', url: '/encode', body: { inputs: [1, 2] }, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'too many inputs', method: 'POST', url: '/encode', body: { inputs: Array(257).fill('a') }, status: 413, code: 'QEMBED_TOO_MANY_INPUTS' },
  { what: 'a text over the character limit', method: 'POST', url: '/encode', body: { inputs: long(100_001) }, status: 413, code: 'QEMBED_INPUT_TOO_LONG' },
  { what: 'unknown precision', method: 'POST', url: '/encode', body: { inputs: 'a', precision: 'int4' }, status: 400, code: 'QEMBED_UNKNOWN_PRECISION' },
  { what: 'unknown input type', method: 'POST', url: '/encode', body: { inputs: 'a', input_type: 'passage' }, status: 400, code: 'QEMBED_UNKNOWN_INPUT_TYPE' },
  { what: 'unknown encoding', method: 'POST', url: '/encode', body: { inputs: 'a', encoding: 'hex' }, status: 400, code: 'QEMBED_UNKNOWN_ENCODING' },
  { what: 'too many tokens with truncate false', method: 'POST', url: '/encode', body: { inputs: 'word '.repeat(400), truncate: false }, status: 413, code: 'QEMBED_INPUT_TOO_LONG' },
  { what: 'another model expected', method: 'POST', url: '/encode', body: { inputs: 'a', model: '0123456789abcdef' }, status: 409, code: 'QEMBED_MODEL_MISMATCH' },
  { what: 'unknown property', method: 'POST', url: '/encode', body: { inputs: 'a', dims: 3 }, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'truncate not a boolean', method: 'POST', url: '/encode', body: { inputs: 'a', truncate: 'yes' }, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: '__proto__ key', method: 'POST', url: '/encode', raw: '{"inputs": "a", "__proto__": {"x": 1}}', status: 400, code: 'QEMBED_FORBIDDEN_PROPERTY' },
  { what: 'body over the size limit', method: 'POST', url: '/encode', raw: JSON.stringify({ inputs: [long(90_000)] }).padEnd(9_000_000, ' '), status: 413, code: 'QEMBED_BODY_TOO_LARGE' },
  // POST /collections
  { what: 'collection name missing', method: 'POST', url: '/collections', body: {}, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'collection name with a space', method: 'POST', url: '/collections', body: { name: 'two words' }, status: 400, code: 'QEMBED_INVALID_COLLECTION_NAME' },
  { what: 'collection name "."', method: 'POST', url: '/collections', body: { name: '.' }, status: 400, code: 'QEMBED_INVALID_COLLECTION_NAME' },
  { what: 'collection name ".."', method: 'POST', url: '/collections', body: { name: '..' }, status: 400, code: 'QEMBED_INVALID_COLLECTION_NAME' },
  { what: 'collection name of 65 characters', method: 'POST', url: '/collections', body: { name: long(65) }, status: 400, code: 'QEMBED_INVALID_COLLECTION_NAME' },
  { what: 'collection name not a string', method: 'POST', url: '/collections', body: { name: 7 }, status: 400, code: 'QEMBED_INVALID_COLLECTION_NAME' },
  { what: 'an existing collection', method: 'POST', url: '/collections', body: { name: 'docs' }, status: 409, code: 'QEMBED_COLLECTION_EXISTS' },
  { what: 'unknown property on a collection', method: 'POST', url: '/collections', body: { name: 'x', model: 'y' }, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  // /collections/{name}
  { what: 'unknown collection', method: 'GET', url: '/collections/nope', status: 404, code: 'QEMBED_COLLECTION_NOT_FOUND' },
  { what: 'invalid collection name in the path', method: 'GET', url: '/collections/a%20b', status: 400, code: 'QEMBED_INVALID_COLLECTION_NAME' },
  { what: 'a broken %-escape in the path', method: 'GET', url: '/collections/%E0%A4%A', status: 400, code: 'QEMBED_BAD_URL' },
  { what: 'delete an unknown collection', method: 'DELETE', url: '/collections/nope', status: 404, code: 'QEMBED_COLLECTION_NOT_FOUND' },
  { what: 're-encode an unknown collection', method: 'POST', url: '/collections/nope/reencode', status: 404, code: 'QEMBED_COLLECTION_NOT_FOUND' },
  // transform fits and switches (/collections/{name}/fit, /fits, /transform)
  { what: 'fit an unknown collection', method: 'POST', url: '/collections/nope/fit', body: {}, status: 404, code: 'QEMBED_COLLECTION_NOT_FOUND' },
  { what: 'fit with an unknown method', method: 'POST', url: '/collections/docs/fit', body: { method: 'pca' }, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'fit on too few documents', method: 'POST', url: '/collections/docs/fit', body: { max_documents: 10 }, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'fit with an unknown switch policy', method: 'POST', url: '/collections/docs/fit', body: { switch: 'maybe' }, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'fit a collection too small to fit', method: 'POST', url: '/collections/docs/fit', body: {}, status: 409, code: 'QEMBED_COLLECTION_TOO_SMALL' },
  { what: 'fits of an unknown collection', method: 'GET', url: '/collections/nope/fits', status: 404, code: 'QEMBED_COLLECTION_NOT_FOUND' },
  { what: 'cancel an unknown fit', method: 'DELETE', url: '/collections/docs/fits/nope', status: 404, code: 'QEMBED_JOB_NOT_FOUND' },
  { what: 'cancel a fit with an over-long id', method: 'DELETE', url: `/collections/docs/fits/${'x'.repeat(65)}`, status: 400, code: 'QEMBED_INVALID_JOB_ID' },
  { what: 'switch to an unknown transform', method: 'POST', url: '/collections/docs/transform', body: { transform: 'nope' }, status: 404, code: 'QEMBED_TRANSFORM_NOT_FOUND' },
  { what: 'switch without a transform', method: 'POST', url: '/collections/docs/transform', body: {}, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'a rotation seed of 0', method: 'POST', url: '/collections/docs/transform', body: { transform: 'rotation', seed: 0 }, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'a seed with another transform than a rotation', method: 'POST', url: '/collections/docs/transform', body: { transform: 'first-dims', seed: 2 }, status: 400, code: 'QEMBED_INVALID_TRANSFORM' },
  { what: 'an unknown switch policy', method: 'POST', url: '/collections/docs/transform', body: { transform: 'first-dims', policy: 'maybe' }, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'switch an unknown collection', method: 'POST', url: '/collections/nope/transform', body: { transform: 'first-dims' }, status: 404, code: 'QEMBED_COLLECTION_NOT_FOUND' },
  { what: 'target recall 0 on a new collection', method: 'POST', url: '/collections', body: { name: 'x', target_recall: 0 }, status: 400, code: 'QEMBED_INVALID_TARGET_RECALL' },
  { what: 'target recall above 1', method: 'PATCH', url: '/collections/docs', body: { target_recall: 1.01 }, status: 400, code: 'QEMBED_INVALID_TARGET_RECALL' },
  { what: 'target recall negative', method: 'PATCH', url: '/collections/docs', body: { target_recall: -0.5 }, status: 400, code: 'QEMBED_INVALID_TARGET_RECALL' },
  { what: 'target recall a string', method: 'PATCH', url: '/collections/docs', body: { target_recall: 'high' }, status: 400, code: 'QEMBED_INVALID_TARGET_RECALL' },
  { what: 'target recall missing', method: 'PATCH', url: '/collections/docs', body: {}, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'unknown setting', method: 'PATCH', url: '/collections/docs', body: { target_recall: 0.9, code_bits: 64 }, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'settings of an unknown collection', method: 'PATCH', url: '/collections/nope', body: { target_recall: 0.9 }, status: 404, code: 'QEMBED_COLLECTION_NOT_FOUND' },
  // PUT /collections/{name}/documents
  { what: 'documents missing', method: 'PUT', url: '/collections/docs/documents', body: {}, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'no documents', method: 'PUT', url: '/collections/docs/documents', body: docs([]), status: 400, code: 'QEMBED_EMPTY_INPUT' },
  { what: 'too many documents', method: 'PUT', url: '/collections/docs/documents', body: docs(Array.from({ length: 257 }, (_, i) => ({ id: `n${i}`, text: 't' }))), status: 413, code: 'QEMBED_TOO_MANY_INPUTS' },
  { what: 'empty document id', method: 'PUT', url: '/collections/docs/documents', body: docs([{ id: '', text: 't' }]), status: 400, code: 'QEMBED_INVALID_DOCUMENT_ID' },
  { what: 'document id of 257 characters', method: 'PUT', url: '/collections/docs/documents', body: docs([{ id: long(257), text: 't' }]), status: 400, code: 'QEMBED_INVALID_DOCUMENT_ID' },
  { what: 'document id starting with U+0000', method: 'PUT', url: '/collections/docs/documents', body: docs([{ id: '\u0000abc', text: 't' }]), status: 400, code: 'QEMBED_INVALID_DOCUMENT_ID' },
  { what: 'document id with U+0000 inside', method: 'PUT', url: '/collections/docs/documents', body: docs([{ id: 'a\u0000b', text: 't' }]), status: 400, code: 'QEMBED_INVALID_DOCUMENT_ID' },
  { what: 'duplicate ids in one batch', method: 'PUT', url: '/collections/docs/documents', body: docs([{ id: 'z', text: 't' }, { id: 'z', text: 'u' }]), status: 400, code: 'QEMBED_DUPLICATE_DOCUMENT_ID' },
  { what: 'document text empty', method: 'PUT', url: '/collections/docs/documents', body: docs([{ id: 'z', text: '' }]), status: 400, code: 'QEMBED_EMPTY_INPUT' },
  { what: 'document text over the limit', method: 'PUT', url: '/collections/docs/documents', body: docs([{ id: 'z', text: long(100_001) }]), status: 413, code: 'QEMBED_INPUT_TOO_LONG' },
  { what: 'metadata a list', method: 'PUT', url: '/collections/docs/documents', body: docs([{ id: 'z', text: 't', metadata: [1] }]), status: 400, code: 'QEMBED_INVALID_METADATA' },
  { what: 'metadata nested 2,000 levels', method: 'PUT', url: '/collections/docs/documents', raw: `{"documents": [{"id": "z", "text": "t", "metadata": ${nested(2000)}}]}`, status: 400, code: 'QEMBED_INVALID_METADATA' },
  { what: 'metadata nested 20,000 levels', method: 'PUT', url: '/collections/docs/documents', raw: `{"documents": [{"id": "z", "text": "t", "metadata": ${nested(20_000)}}]}`, status: 400, code: 'QEMBED_INVALID_METADATA' },
  { what: '__proto__ in metadata', method: 'PUT', url: '/collections/docs/documents', raw: '{"documents": [{"id": "z", "text": "t", "metadata": {"__proto__": {"a": 1}}}]}', status: 400, code: 'QEMBED_FORBIDDEN_PROPERTY' },
  { what: 'too many tokens with truncate false', method: 'PUT', url: '/collections/docs/documents', body: { documents: [{ id: 'z', text: 'word '.repeat(400) }], truncate: false }, status: 413, code: 'QEMBED_INPUT_TOO_LONG' },
  { what: 'documents of an unknown collection', method: 'PUT', url: '/collections/nope/documents', body: docs([{ id: 'z', text: 't' }]), status: 404, code: 'QEMBED_COLLECTION_NOT_FOUND' },
  { what: 'unknown property on a document', method: 'PUT', url: '/collections/docs/documents', body: docs([{ id: 'z', text: 't', vector: [1] }]), status: 400, code: 'QEMBED_INVALID_REQUEST' },
  // GET /collections/{name}/documents
  { what: 'list documents of an unknown collection', method: 'GET', url: '/collections/nope/documents', status: 404, code: 'QEMBED_COLLECTION_NOT_FOUND' },
  { what: 'list with limit 0', method: 'GET', url: '/collections/docs/documents?limit=0', status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'list with limit 201', method: 'GET', url: '/collections/docs/documents?limit=201', status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'list with limit not a number', method: 'GET', url: '/collections/docs/documents?limit=all', status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'list with an offset', method: 'GET', url: '/collections/docs/documents?offset=20', status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'list after a cursor it did not give', method: 'GET', url: '/collections/docs/documents?after=bm90LWEtY3Vyc29y', status: 400, code: 'QEMBED_INVALID_CURSOR' },
  { what: 'list after a cursor with characters outside base64url', method: 'GET', url: '/collections/docs/documents?after=a%2Bb%3D', status: 400, code: 'QEMBED_INVALID_CURSOR' },
  { what: 'list after an empty cursor', method: 'GET', url: '/collections/docs/documents?after=', status: 400, code: 'QEMBED_INVALID_CURSOR' },
  { what: 'list with a filter that is not JSON', method: 'GET', url: '/collections/docs/documents?filter=%7Blang%3Aen%7D', status: 400, code: 'QEMBED_INVALID_FILTER' },
  { what: 'list with a filter that is a list', method: 'GET', url: '/collections/docs/documents?filter=%5B%22en%22%5D', status: 400, code: 'QEMBED_INVALID_FILTER' },
  { what: 'list with a filter on a nested value', method: 'GET', url: `/collections/docs/documents?filter=${encodeURIComponent('{"lang": {"$in": ["en"]}}')}`, status: 400, code: 'QEMBED_INVALID_FILTER' },
  // /collections/{name}/documents/{id}
  { what: 'unknown document', method: 'GET', url: '/collections/docs/documents/nope', status: 404, code: 'QEMBED_DOCUMENT_NOT_FOUND' },
  { what: 'unknown document with a 200-character id', method: 'GET', url: `/collections/docs/documents/${long(200)}`, status: 404, code: 'QEMBED_DOCUMENT_NOT_FOUND' },
  { what: 'document id of 300 characters in the path', method: 'GET', url: `/collections/docs/documents/${long(300)}`, status: 400, code: 'QEMBED_INVALID_DOCUMENT_ID' },
  { what: 'delete an unknown document', method: 'DELETE', url: '/collections/docs/documents/nope', status: 404, code: 'QEMBED_DOCUMENT_NOT_FOUND' },
  { what: 'delete a document of an unknown collection', method: 'DELETE', url: '/collections/nope/documents/d1', status: 404, code: 'QEMBED_COLLECTION_NOT_FOUND' },
  // POST /collections/{name}/documents/delete
  { what: 'ids missing', method: 'POST', url: '/collections/docs/documents/delete', body: {}, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'no ids', method: 'POST', url: '/collections/docs/documents/delete', body: { ids: [] }, status: 400, code: 'QEMBED_EMPTY_INPUT' },
  { what: 'too many ids', method: 'POST', url: '/collections/docs/documents/delete', body: { ids: Array.from({ length: 10_001 }, (_, i) => `i${i}`) }, status: 413, code: 'QEMBED_TOO_MANY_INPUTS' },
  { what: 'an id that is not a string', method: 'POST', url: '/collections/docs/documents/delete', body: { ids: [1] }, status: 400, code: 'QEMBED_INVALID_DOCUMENT_ID' },
  // POST /search
  { what: 'search without a collection', method: 'POST', url: '/search', body: { query: 'a' }, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'search without query or vector', method: 'POST', url: '/search', body: { collection: 'docs' }, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'search with both query and vector', method: 'POST', url: '/search', body: { collection: 'docs', query: 'a', vector: Array(32).fill(0.1) }, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'empty query', method: 'POST', url: '/search', body: { collection: 'docs', query: '' }, status: 400, code: 'QEMBED_EMPTY_INPUT' },
  { what: 'top_k 0', method: 'POST', url: '/search', body: { collection: 'docs', query: 'a', top_k: 0 }, status: 400, code: 'QEMBED_INVALID_TOP_K' },
  { what: 'top_k too large', method: 'POST', url: '/search', body: { collection: 'docs', query: 'a', top_k: 100_000 }, status: 400, code: 'QEMBED_INVALID_TOP_K' },
  { what: 'rescore multiplier 0', method: 'POST', url: '/search', body: { collection: 'docs', query: 'a', rescore_multiplier: 0 }, status: 400, code: 'QEMBED_INVALID_RESCORE_MULTIPLIER' },
  { what: 'top_k 1000 × multiplier 21: over 20,000 candidates', method: 'POST', url: '/search', body: { collection: 'docs', query: 'a', top_k: 1000, rescore_multiplier: 21 }, status: 400, code: 'QEMBED_INVALID_RESCORE_MULTIPLIER' },
  { what: 'rescore multiplier 2001', method: 'POST', url: '/search', body: { collection: 'docs', query: 'a', rescore_multiplier: 2001 }, status: 400, code: 'QEMBED_INVALID_RESCORE_MULTIPLIER' },
  { what: 'rescore multiplier "max"', method: 'POST', url: '/search', body: { collection: 'docs', query: 'a', rescore_multiplier: 'max' }, status: 400, code: 'QEMBED_INVALID_RESCORE_MULTIPLIER' },
  { what: 'a multiplier limit without auto', method: 'POST', url: '/search', body: { collection: 'docs', query: 'a', rescore_multiplier: 4, max_rescore_multiplier: 8 }, status: 400, code: 'QEMBED_INVALID_RESCORE_MULTIPLIER' },
  { what: 'auto with a multiplier limit of 2001', method: 'POST', url: '/search', body: { collection: 'docs', query: 'a', rescore_multiplier: 'auto', max_rescore_multiplier: 2001 }, status: 400, code: 'QEMBED_INVALID_RESCORE_MULTIPLIER' },
  { what: 'rescore "approximate"', method: 'POST', url: '/search', body: { collection: 'docs', query: 'a', rescore: 'approximate' }, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'vector of the wrong length', method: 'POST', url: '/search', body: { collection: 'docs', vector: [0.1, 0.2] }, status: 400, code: 'QEMBED_INVALID_VECTOR' },
  { what: 'vector with a string', method: 'POST', url: '/search', body: { collection: 'docs', vector: ['a'] }, status: 400, code: 'QEMBED_INVALID_VECTOR' },
  { what: 'filter on a nested value', method: 'POST', url: '/search', body: { collection: 'docs', query: 'a', filter: { lang: { $in: ['en'] } } }, status: 400, code: 'QEMBED_INVALID_FILTER' },
  { what: 'search an unknown collection', method: 'POST', url: '/search', body: { collection: 'nope', query: 'a' }, status: 404, code: 'QEMBED_COLLECTION_NOT_FOUND' },
  { what: 'search with an invalid collection name', method: 'POST', url: '/search', body: { collection: '..', query: 'a' }, status: 400, code: 'QEMBED_INVALID_COLLECTION_NAME' },
  // /models
  { what: 'activate a malformed fingerprint', method: 'POST', url: '/models/not-hex/activate', status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'activate an unknown fingerprint', method: 'POST', url: '/models/0123456789abcdef/activate', status: 404, code: 'QEMBED_MODEL_NOT_FOUND' },
  // /train-jobs
  { what: 'training job without a dataset', method: 'POST', url: '/train-jobs', body: {}, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'training job on a dataset outside the root', method: 'POST', url: '/train-jobs', body: { dataset: '../../etc' }, status: 400, code: 'QEMBED_PATH_OUTSIDE_ROOT' },
  { what: 'training job on a missing dataset', method: 'POST', url: '/train-jobs', body: { dataset: 'missing' }, status: 404, code: 'QEMBED_DATASET_NOT_FOUND' },
  { what: 'training job with a path as its name', method: 'POST', url: '/train-jobs', body: { dataset: 'tiny', name: '../x' }, status: 400, code: 'QEMBED_INVALID_JOB_NAME' },
  { what: 'training job with learning rate 0', method: 'POST', url: '/train-jobs', body: { dataset: 'tiny', learning_rate: 0 }, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'training job with an unknown mode', method: 'POST', url: '/train-jobs', body: { dataset: 'tiny', mode: 'turbo' }, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'training job from an unknown bundle', method: 'POST', url: '/train-jobs', body: { dataset: 'tiny', base_model: 'nope' }, status: 404, code: 'QEMBED_MODEL_NOT_FOUND' },
  { what: 'job list limit not a number', method: 'GET', url: '/train-jobs?limit=abc', status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'job list limit 0', method: 'GET', url: '/train-jobs?limit=0', status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'job list with an unknown state', method: 'GET', url: '/train-jobs?state=lost', status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'job id of 65 characters', method: 'GET', url: `/train-jobs/${long(65)}`, status: 400, code: 'QEMBED_INVALID_JOB_ID' },
  { what: 'unknown job', method: 'GET', url: '/train-jobs/nope', status: 404, code: 'QEMBED_JOB_NOT_FOUND' },
  { what: 'cancel an unknown job', method: 'DELETE', url: '/train-jobs/nope', status: 404, code: 'QEMBED_JOB_NOT_FOUND' },
  // Routes and methods
  { what: 'unknown route', method: 'GET', url: '/nope', status: 404, code: 'QEMBED_ROUTE_NOT_FOUND' },
  { what: 'PATCH on collections', method: 'PATCH', url: '/collections', body: {}, status: 405, code: 'QEMBED_METHOD_NOT_ALLOWED' },
  { what: 'GET on /encode', method: 'GET', url: '/encode', status: 405, code: 'QEMBED_METHOD_NOT_ALLOWED' },
  { what: 'GET on /search', method: 'GET', url: '/search', status: 405, code: 'QEMBED_METHOD_NOT_ALLOWED' },
  { what: 'DELETE on /health', method: 'DELETE', url: '/health', status: 405, code: 'QEMBED_METHOD_NOT_ALLOWED' },
  { what: 'a file the API docs do not have', method: 'GET', url: '/docs/static/nope.js', status: 404, code: 'QEMBED_ROUTE_NOT_FOUND' },
  // POST /v1/embeddings and GET /v1/models (OpenAI's error shape: the error nested, as qembed's)
  { what: 'v1: body is not JSON', method: 'POST', url: '/v1/embeddings', raw: '{"input": "a"', status: 400, code: 'QEMBED_MALFORMED_JSON' },
  { what: 'v1: input missing', method: 'POST', url: '/v1/embeddings', body: { model: 'tiny-random-bert' }, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'v1: empty input list', method: 'POST', url: '/v1/embeddings', body: { input: [], model: 'tiny-random-bert' }, status: 400, code: 'QEMBED_EMPTY_INPUT' },
  { what: 'v1: empty string input', method: 'POST', url: '/v1/embeddings', body: { input: '', model: 'tiny-random-bert' }, status: 400, code: 'QEMBED_EMPTY_INPUT' },
  { what: 'v1: 2,049 inputs', method: 'POST', url: '/v1/embeddings', body: { input: Array(2049).fill('a'), model: 'tiny-random-bert' }, status: 413, code: 'QEMBED_TOO_MANY_INPUTS' },
  { what: 'v1: token ids', method: 'POST', url: '/v1/embeddings', body: { input: [101, 2023, 102], model: 'tiny-random-bert' }, status: 400, code: 'QEMBED_TOKEN_INPUTS' },
  { what: 'v1: token ids per text', method: 'POST', url: '/v1/embeddings', body: { input: [[101, 102], [101, 7, 102]], model: 'tiny-random-bert' }, status: 400, code: 'QEMBED_TOKEN_INPUTS' },
  { what: 'v1: another model', method: 'POST', url: '/v1/embeddings', body: { input: 'a', model: 'text-embedding-3-small' }, status: 404, code: 'QEMBED_MODEL_NOT_FOUND' },
  { what: 'v1: unknown encoding_format', method: 'POST', url: '/v1/embeddings', body: { input: 'a', model: 'tiny-random-bert', encoding_format: 'hex' }, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'v1: dimensions 0', method: 'POST', url: '/v1/embeddings', body: { input: 'a', model: 'tiny-random-bert', dimensions: 0 }, status: 400, code: 'QEMBED_INVALID_DIMENSIONS' },
  { what: 'v1: dimensions above the model', method: 'POST', url: '/v1/embeddings', body: { input: 'a', model: 'tiny-random-bert', dimensions: 33 }, status: 400, code: 'QEMBED_INVALID_DIMENSIONS' },
  { what: 'v1: unknown precision', method: 'POST', url: '/v1/embeddings', body: { input: 'a', model: 'tiny-random-bert', precision: 'int4' }, status: 400, code: 'QEMBED_UNKNOWN_PRECISION' },
  { what: 'v1: unknown property', method: 'POST', url: '/v1/embeddings', body: { input: 'a', model: 'tiny-random-bert', dims: 3 }, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'v1: unknown model id', method: 'GET', url: '/v1/models/nope', status: 404, code: 'QEMBED_MODEL_NOT_FOUND' },
  { what: 'v1: GET on /v1/embeddings', method: 'GET', url: '/v1/embeddings', status: 405, code: 'QEMBED_METHOD_NOT_ALLOWED' },
  { what: 'v1: unknown route', method: 'GET', url: '/v1/completions', status: 404, code: 'QEMBED_ROUTE_NOT_FOUND' },
  // POST /v2/embed (Cohere's error shape: message and code at the top level)
  { what: 'v2: GET on /v2/embed', method: 'GET', url: '/v2/embed', status: 405, code: 'QEMBED_METHOD_NOT_ALLOWED' },
  { what: 'v2: body is not JSON', method: 'POST', url: '/v2/embed', raw: '{"texts": ["a"]', status: 400, code: 'QEMBED_MALFORMED_JSON' },
  { what: 'v2: model missing', method: 'POST', url: '/v2/embed', body: { texts: ['a'], input_type: 'search_query' }, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'v2: texts missing', method: 'POST', url: '/v2/embed', body: { model: 'tiny-random-bert', input_type: 'search_query' }, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'v2: empty texts', method: 'POST', url: '/v2/embed', body: { model: 'tiny-random-bert', texts: [], input_type: 'search_query' }, status: 400, code: 'QEMBED_EMPTY_INPUT' },
  { what: 'v2: another model', method: 'POST', url: '/v2/embed', body: { model: 'embed-v4.0', texts: ['a'], input_type: 'search_query' }, status: 404, code: 'QEMBED_MODEL_NOT_FOUND' },
  { what: 'v2: unknown embedding type', method: 'POST', url: '/v2/embed', body: { model: 'tiny-random-bert', texts: ['a'], input_type: 'search_query', embedding_types: ['int4'] }, status: 400, code: 'QEMBED_INVALID_REQUEST' },
  { what: 'v2: unknown input type', method: 'POST', url: '/v2/embed', body: { model: 'tiny-random-bert', texts: ['a'], input_type: 'image' }, status: 400, code: 'QEMBED_UNKNOWN_INPUT_TYPE' },
  { what: 'v2: truncate START', method: 'POST', url: '/v2/embed', body: { model: 'tiny-random-bert', texts: ['a'], input_type: 'search_query', truncate: 'START' }, status: 400, code: 'QEMBED_UNSUPPORTED_TRUNCATION' },
  { what: 'v2: truncate NONE on an overlong text', method: 'POST', url: '/v2/embed', body: { model: 'tiny-random-bert', texts: ['word '.repeat(400)], input_type: 'search_query', truncate: 'NONE' }, status: 413, code: 'QEMBED_INPUT_TOO_LONG' },
  { what: 'v2: output_dimension above the model', method: 'POST', url: '/v2/embed', body: { model: 'tiny-random-bert', texts: ['a'], input_type: 'search_query', output_dimension: 64 }, status: 400, code: 'QEMBED_INVALID_DIMENSIONS' },
  { what: 'v2: unknown property', method: 'POST', url: '/v2/embed', body: { model: 'tiny-random-bert', texts: ['a'], input_type: 'search_query', images: ['data:image/png;base64,AAAA'] }, status: 400, code: 'QEMBED_INVALID_REQUEST' },
];

/**
 * The routes that take no input at all (no body, no query, no path parameter): nothing to send
 * them that could be bad. Checked against the OpenAPI document below; the /docs pages are the
 * Swagger UI's (not in the document: fixed paths).
 */
const NO_INPUT = [
  'GET /health',
  'GET /metrics',
  'GET /collections',
  'GET /models',
  'GET /v1/models',
  'GET /docs',
  'GET /docs/',
  'GET /docs/json',
  'GET /docs/yaml',
  'GET /docs/static/index.html',
  'GET /docs/static/swagger-initializer.js',
  // The web console's static files (test/console/ loads them in a browser); /console/* prints
  // as a child "*" of /console in fastify's route tree.
  'GET /',
  'GET /console',
  'GET /console*',
];

/**
 * The app's own route table, as fastify's router prints it: a tree whose lines read
 * `├── /segment (GET, HEAD)`, four characters of indentation a level, each path the
 * concatenation of its ancestors'. HEAD is left out: fastify answers it with the GET route.
 */
function routeTable(printed: string): { method: string; url: string }[] {
  const routes: { method: string; url: string }[] = [];
  const stack: string[] = [];
  for (const line of printed.split('\n')) {
    const m = /^([│ ]*)(?:├── |└── )(.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    stack.length = depth;
    stack.push(m[2]!);
    for (const method of (m[3] ?? '').split(', ').filter((x) => x && x !== 'HEAD')) routes.push({ method, url: stack.join('') });
  }
  return routes;
}

/** Whether the path of `url` is one that route `pattern` (with :params and a * wildcard) answers. */
const matches = (pattern: string, url: string) =>
  new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/:[A-Za-z_]+/g, '[^/]+').replace(/\*/g, '.*')}$`).test(url.split('?')[0]!);

let t: TestApp;

/** Everything a refused request must leave as it was. */
async function state(): Promise<string> {
  const get = async (url: string) => (await t.app.inject({ method: 'GET', url })).json();
  const collections = (await get('/collections')).collections.map((c: { name: string; fingerprint: string; documents: number; quality: { target_recall: number } }) => [
    c.name,
    c.fingerprint,
    c.documents,
    c.quality.target_recall,
  ]);
  const documents = await Promise.all(['d1', 'd2', 'd3'].map((id) => get(`/collections/docs/documents/${id}`)));
  const jobs = (await get('/train-jobs')).jobs.map((j: { id: string; state: string }) => [j.id, j.state]);
  const served = (await get('/health')).model.fingerprint;
  return JSON.stringify({ collections, documents, jobs, served });
}

beforeAll(async () => {
  t = await startTestApp({ modelsDir: models, datasetsDir: datasets, maxInputs: 256 });
  await t.app.inject({ method: 'POST', url: '/collections', payload: { name: 'docs' } });
  await t.app.inject({
    method: 'PUT',
    url: '/collections/docs/documents',
    payload: docs(['rivers and lakes', 'stars at night', 'fresh bread'].map((text, i) => ({ id: `d${i + 1}`, text, metadata: { lang: 'en' } }))),
  });
  await t.app.inject({ method: 'POST', url: '/train-jobs', payload: { dataset: 'tiny' } });
});
afterAll(async () => {
  await t.close();
  rmSync(models, { recursive: true, force: true });
  rmSync(datasets, { recursive: true, force: true });
  void other;
});

describe('bad requests', () => {
  it('the catalogue covers every route and method of the app, or lists it as taking no input', () => {
    const routes = routeTable(t.app.printRoutes({ commonPrefix: false }));
    // The parser read the table (it found routes of every depth, a parameter among them).
    expect(routes).toContainEqual({ method: 'GET', url: '/collections/:name/documents/:id' });
    const uncovered = routes
      .map((r) => `${r.method} ${r.url}`)
      .filter((route) => !NO_INPUT.includes(route))
      .filter((route) => {
        const [method, url] = route.split(' ') as [string, string];
        return !CATALOGUE.some((c) => c.method === method && matches(url, c.url));
      });
    expect(uncovered).toEqual([]);
    // Every route listed as taking no input exists, and really takes none.
    const listed = new Set(routes.map((r) => `${r.method} ${r.url}`));
    expect(NO_INPUT.filter((route) => !listed.has(route))).toEqual([]);
    const spec = t.app.swagger() as { paths: Record<string, Record<string, { parameters?: unknown[]; requestBody?: unknown }>> };
    for (const route of NO_INPUT) {
      const [method, url] = route.split(' ') as [string, string];
      const operation = spec.paths[url]?.[method.toLowerCase()];
      if (url.startsWith('/docs') || url === '/' || url.startsWith('/console')) expect(operation, route).toBeUndefined();
      else expect({ route, parameters: operation?.parameters ?? [], body: operation?.requestBody }).toEqual({ route, parameters: [], body: undefined });
    }
  });

  it('sends every request to a route of the app, unless it is about an unknown route or method', () => {
    const routes = routeTable(t.app.printRoutes({ commonPrefix: false }));
    const stray = CATALOGUE.filter((c) => c.code !== 'QEMBED_ROUTE_NOT_FOUND' && c.code !== 'QEMBED_METHOD_NOT_ALLOWED')
      .filter((c) => !routes.some((r) => r.method === c.method && matches(r.url, c.url)))
      .map((c) => `${c.method} ${c.url}`);
    expect(stray).toEqual([]);
  });

  it.each(CATALOGUE.map((c) => [c.what, c] as const))('%s', async (_what, c) => {
    const before = await state();
    const res = await t.app.inject({
      method: c.method,
      url: c.url,
      // Many clients send the JSON content type even without a body: so does this test.
      headers: { 'content-type': c.contentType ?? 'application/json' },
      ...(c.raw !== undefined ? { payload: c.raw } : c.body !== undefined ? { payload: JSON.stringify(c.body) } : {}),
    });
    // qembed's and OpenAI's shapes nest the error; Cohere's (under /v2/) does not.
    const json = res.json() as { error?: { code?: unknown; message?: unknown }; code?: unknown; message?: unknown };
    const body = c.url.startsWith('/v2/') ? json : json.error;
    expect({ status: res.statusCode, code: body?.code }).toEqual({ status: c.status, code: c.code });
    expect(typeof body?.message).toBe('string');
    if (c.status === 405) expect(res.headers.allow).toBeTruthy();
    expect(await state()).toBe(before);
  });
});
