/**
 * GCIDE, the Collaborative International Dictionary of English (Debian's dict-gcide, dictd
 * format): gcide.index lines `headword<TAB>offset<TAB>length` (numbers in dictd's base64 digits)
 * into the gzip-compatible gcide.dict.dz. Several headwords point to one article; each article
 * (distinct offset and length) is one entry: its headword as the head and its definitions,
 * cleaned of dictionary markup, as the body.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Entry } from './entry.js';

const DIGITS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

function dictNumber(text: string): number {
  let n = 0;
  for (const c of text) {
    const d = DIGITS.indexOf(c);
    if (d < 0) throw new Error(`gcide.index: ${JSON.stringify(text)} is not a dictd number`);
    n = n * 64 + d;
  }
  return n;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** An article's text: UTF-8, except a few articles in a single-byte encoding, read as Latin-1. */
function decode(bytes: Buffer): string {
  try {
    return utf8.decode(bytes);
  } catch {
    return bytes.toString('latin1');
  }
}

/**
 * GCIDE writes letters with diacritics as short bracketed codes ([e^], ['e], [=a], [ae], [aum]):
 * their base letters. Named symbols and editorial labels ([root], [Obs.], [R.], [PJC], [1913
 * Webster]) yield nothing.
 */
function bracketed(inside: string): string {
  if (/\s|\.$/.test(inside)) return '';
  const letters = inside.replace(/[^A-Za-z]/g, '');
  if (letters.length <= 2) return letters;
  if (/^[a-z]um$/.test(letters)) return letters[0]!; // umlauts: [aum], [oum]
  if (letters === 'imac') return 'i';
  if (letters === 'eth' || letters === 'thorn') return 'th';
  return '';
}

/** Replaces every (possibly nested) [...] by bracketed(its content); etymologies vanish whole. */
function replaceBrackets(text: string): string {
  let out = '';
  let depth = 0;
  let inner = '';
  for (const c of text) {
    if (c === '[') {
      depth++;
      if (depth === 1) inner = '';
      else inner += c;
    } else if (c === ']' && depth > 0) {
      depth--;
      if (depth === 0) {
        out += bracketed(inner);
      } else inner += c;
    } else if (depth > 0) inner += c;
    else out += c;
  }
  return out;
}

/** Markup out: pronunciations \Ap"ple\, brackets (above), cross-reference braces {Pyrus}. */
export function cleanGcide(text: string): string {
  return replaceBrackets(text.replace(/\\[^\\\n]*\\/g, '')).replace(/[{}]/g, '');
}

/**
 * The number of leading lines that form the article's head: the headword line and its
 * continuations, up to where its brackets (inflections, etymology) are closed and no further
 * bracket follows on the next line.
 */
function headLines(lines: readonly string[]): number {
  let depth = 0;
  for (let i = 0; i < lines.length; i++) {
    for (const c of lines[i]!) {
      if (c === '[') depth++;
      else if (c === ']') depth = Math.max(0, depth - 1);
    }
    if (depth === 0 && !lines[i + 1]?.trimStart().startsWith('[')) return i + 1;
  }
  return lines.length;
}

/**
 * The articles of the dictd files gcide.index and gcide.dict.dz in `dir`, in index order.
 * Articles whose first line names no headword (`Word \pronunciation\`) are left out: the
 * database's own description and a few fragments that continue another article.
 */
export function gcideEntries(dir: string): Entry[] {
  const dict = gunzipSync(readFileSync(path.join(dir, 'gcide.dict.dz')));
  const seen = new Set<string>();
  const entries: Entry[] = [];
  for (const line of readFileSync(path.join(dir, 'gcide.index'), 'utf8').split('\n')) {
    if (line === '') continue;
    const [, offsetText, lengthText] = line.split('\t');
    if (lengthText === undefined) throw new Error(`gcide.index: expected three tab-separated fields: ${line}`);
    const key = `${offsetText}\t${lengthText}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const offset = dictNumber(offsetText!);
    const lines = decode(dict.subarray(offset, offset + dictNumber(lengthText))).split('\n');
    const backslash = lines[0]!.indexOf(' \\');
    if (backslash <= 0) continue;
    entries.push({
      id: `gcide:${offset}`,
      head: cleanGcide(lines[0]!.slice(0, backslash)),
      body: cleanGcide(lines.slice(headLines(lines)).join('\n')),
    });
  }
  return entries;
}
