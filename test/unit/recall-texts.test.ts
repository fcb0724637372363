/**
 * The recall corpus's texts (bench/recall/): the source parsers on small files in their real
 * formats, the passage rules (normalize, cut, drop short and repeated), the pseudo-query rule, and
 * a hold-out that is deterministic, order-independent and disjoint from the corpus.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanGcide, gcideEntries } from '../../bench/recall/gcide.js';
import { holdOut, pseudoQuery } from '../../bench/recall/queries.js';
import { cut, filterPassages, type Passage, toPassages } from '../../bench/recall/texts.js';
import { wordnetEntries } from '../../bench/recall/wordnet.js';

const dir = mkdtempSync(path.join(tmpdir(), 'qembed-recall-texts-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('source parsers', () => {
  it('WordNet: one entry per synset, lemmas (markers and underscores out) as head, the gloss as body', () => {
    const wn = path.join(dir, 'wordnet');
    const header = '  1 This software and database is being provided to you, the LICENSEE, by  \n';
    const synset = (line: string) => `${header}${line}\n`;
    mkdirSync(wn, { recursive: true });
    writeFileSync(path.join(wn, 'data.noun'), synset('00006269 03 n 01 life 0 002 @ 00004258 n 0000 ~ 07993776 n 0000 | living things collectively; "the oceans are teeming with life"  '));
    writeFileSync(path.join(wn, 'data.verb'), synset('01586756 35 v 02 kick_in 0 kick_down 0 001 @ 01583656 v 0000 01 + 08 00 | open violently; "kick in the doors"  '));
    writeFileSync(path.join(wn, 'data.adj'), synset('00022948 00 s 02 ablaze(p) 0 afire(p) 0 001 & 00022602 a 0000 | lighted up by or as by fire or flame  '));
    writeFileSync(path.join(wn, 'data.adv'), header);
    expect(wordnetEntries(wn)).toEqual([
      { id: 'wordnet:noun:00006269', head: 'life', body: 'living things collectively; "the oceans are teeming with life"  ' },
      { id: 'wordnet:verb:01586756', head: 'kick in, kick down', body: 'open violently; "kick in the doors"  ' },
      { id: 'wordnet:adj:00022948', head: 'ablaze, afire', body: 'lighted up by or as by fire or flame  ' },
    ]);
  });

  it('GCIDE: one entry per article (several headwords may share one), the head block and markup out', () => {
    const articles = [
      'Apple \\Ap"ple\\ ([a^]p"p\'l), n. [OE. appel, eppel, AS.\n   [ae]ppel; of unknown origin.]\n   1. The fleshy pome of a rosaceous tree ({Pyrus\n      malus}).\n      [1913 Webster]\n',
      '\n[1913 Webster]\n\n   {Profile paper}, a fragment continuing another article.\n',
      'Caf \\Caf"\\, n.\n   A caf[\'e] near the sea. [Obs.]\n   [PJC]\n',
    ];
    const bytes = articles.map((a) => Buffer.from(a));
    const digits = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const b64 = (n: number): string => (n < 64 ? digits[n]! : b64(Math.floor(n / 64)) + digits[n % 64]!);
    const offsets = bytes.map((_, i) => bytes.slice(0, i).reduce((s, b) => s + b.length, 0));
    const line = (word: string, i: number) => `${word}\t${b64(offsets[i]!)}\t${b64(bytes[i]!.length)}\n`;
    const gc = path.join(dir, 'gcide');
    mkdirSync(gc, { recursive: true });
    writeFileSync(path.join(gc, 'gcide.dict.dz'), gzipSync(Buffer.concat(bytes)));
    writeFileSync(path.join(gc, 'gcide.index'), line('Apple', 0) + line('Apples', 0) + line('Profile paper', 1) + line('Caf', 2));
    const entries = gcideEntries(gc).map((e) => ({ ...e, body: e.body.replace(/\s+/g, ' ').trim() }));
    expect(entries).toEqual([
      { id: 'gcide:0', head: 'Apple', body: '1. The fleshy pome of a rosaceous tree (Pyrus malus).' },
      { id: `gcide:${offsets[2]}`, head: 'Caf', body: 'A cafe near the sea.' },
    ]);
  });

  it('GCIDE markup: diacritic codes become letters, labels and etymologies vanish', () => {
    expect(cleanGcide('C[ae]sar, [=a]ble, na[i^]ve, m[aum]dchen, [root]x [R.] [1913 Webster] {See} [L. pomum [ae]]')).toBe('Caesar, able, naive, madchen, x   See ');
  });
});

describe('passages', () => {
  it('"head: body", white space collapsed; cut at a word boundary; short and repeated passages dropped', () => {
    const passages = toPassages('s', [
      { id: 's:1', head: ' life ', body: 'living  things\n collectively' },
      { id: 's:2', head: '', body: 'too short' },
      { id: 's:3', head: 'life', body: 'living things collectively' },
      { id: 's:4', head: '', body: `${'word '.repeat(300)}end` },
    ]);
    expect(passages[0]).toEqual({ id: 's:1', source: 's', text: 'life: living things collectively', gist: 'living things collectively' });
    expect(passages[3]!.text.length).toBeLessThanOrEqual(1000);
    expect(passages[3]!.text.endsWith('word')).toBe(true);
    const { kept, short, duplicates } = filterPassages(passages);
    expect(kept.map((p) => p.id)).toEqual(['s:1', 's:4']);
    expect([short, duplicates]).toEqual([1, 1]);
    expect(cut('abcdef', 4)).toBe('abcd');
  });
});

describe('pseudo-queries', () => {
  it('the first clause, sense numbers, labels and asides out, stop words dropped, 3 to 8 words', () => {
    expect(pseudoQuery('a plant or animal that is atypically small')).toBe('plant animal atypically small');
    expect(pseudoQuery('1. The fleshy pome or fruit of a rosaceous tree (Pyrus malus) cultivated in numberless varieties in the temperate zones.')).toBe(
      'fleshy pome fruit rosaceous tree cultivated numberless varieties',
    );
    expect(pseudoQuery('(Zool.) A sea turtle (Eretmochelys imbricata), which yields the best tortoise shell; -- called also caret.')).toBe(
      'sea turtle yields best tortoise shell',
    );
    expect(pseudoQuery('open violently; "kick in the doors"')).toBeUndefined();
    expect(pseudoQuery('Same as Weir.')).toBeUndefined();
  });

  it('holds out a fixed number of passages by hash of their ids, whatever their order, from the named sources only', () => {
    const passages: Passage[] = Array.from({ length: 200 }, (_, i) => {
      const gist = `definition number ${1000 + i} describing item ${1000 + (i % 7)}`;
      return { id: `${i % 3 === 0 ? 'kept' : 'wn'}:${i}`, source: i % 3 === 0 ? 'kept' : 'wn', text: `w${i}: ${gist}`, gist };
    });
    const a = holdOut(passages, 25, new Set(['wn']));
    const b = holdOut([...passages].reverse(), 25, new Set(['wn']));
    expect(a.queries).toHaveLength(25);
    expect(a.queries.map((q) => q.id).sort()).toEqual(b.queries.map((q) => q.id).sort());
    expect(a.queries.every((q) => q.source === 'wn' && q.id === `pseudo:${q.from}`)).toBe(true);
    const held = new Set(a.queries.map((q) => q.from));
    expect(a.corpus).toHaveLength(175);
    expect(a.corpus.some((p) => held.has(p.id))).toBe(false);
    expect(a.queries[0]!.text).toMatch(/^definition number 1\d{3} describing item 100\d$/);
  });
});
