/**
 * What the OpenAI- and Cohere-compatible routes check the same way: the model a request names
 * and its list of texts. Their schemas accept any `input`/`texts` so that these checks can say
 * exactly what is wrong (token ids, empty, too many, too long) instead of a schema mismatch.
 */
import type { Encoder } from '../encoder/encoder.js';
import { errors } from '../errors.js';
import { embeddingEncoder } from '../models/embedding-models.js';

/** Most texts in one request of the compatible APIs (OpenAI's limit), embedded in batches of QEMBED_MAX_INPUTS. */
export const COMPAT_MAX_INPUTS = 2048;

/** The served encoder a request names (models/embedding-models.ts) and its texts (compatInputs). */
export function compatRequest(served: Encoder, model: string, value: unknown, field: string, maxChars: number): { encoder: Encoder; texts: string[] } {
  return { encoder: embeddingEncoder(served, model), texts: compatInputs(value, field, COMPAT_MAX_INPUTS, maxChars) };
}

const isTokenIds = (v: unknown) => Array.isArray(v) && v.length > 0 && v.every((x) => Number.isInteger(x));

/** The texts of `value` (a text or a list of 1 to `max` texts of 1 to `maxChars` characters). */
export function compatInputs(value: unknown, field: string, max: number, maxChars: number): string[] {
  if (isTokenIds(value) || (Array.isArray(value) && value.length > 0 && value.every(isTokenIds))) {
    throw errors.tokenInputs(
      `${field} holds token ids; this server needs the texts themselves (it tokenizes with its own model's tokenizer). ` +
        "Send strings: in LangChain's OpenAIEmbeddings set check_embedding_ctx_length=False (it tokenizes with tiktoken otherwise); " +
        'in LlamaIndex and the OpenAI SDKs pass the texts as they are',
      { field },
    );
  }
  const texts = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(texts) || !texts.every((t) => typeof t === 'string')) {
    throw errors.invalidRequest(`${field} must be a text or a list of texts`, { field });
  }
  if (texts.length === 0) throw errors.emptyInput(`${field} must not be empty`, { field });
  if (texts.length > max) throw errors.tooManyInputs(`${field} has ${texts.length} texts; at most ${max} a request: split it`, { field });
  const empty = texts.findIndex((t) => t.length === 0);
  if (empty >= 0) throw errors.emptyInput(`${field}[${empty}] is an empty string`, { field });
  const long = texts.findIndex((t) => t.length > maxChars);
  if (long >= 0) throw errors.inputTooLong(`${field}[${long}] is longer than ${maxChars} characters (QEMBED_MAX_INPUT_CHARS)`, { field });
  return texts;
}
