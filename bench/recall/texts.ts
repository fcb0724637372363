/**
 * The recall corpus's passages, gathered from their sources and made uniform: a passage is
 * `head: body` (lemmas and gloss, headword and definitions) or the body alone for running text,
 * white space collapsed, cut to at most MAX_CHARS at a word boundary; passages under MIN_CHARS
 * and exact duplicates of an earlier passage (in source order) are dropped.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { documentText } from '../../src/datasets/beir.js';
import { PROBE_PASSAGES, PROBE_QUERIES } from '../../src/models/probe-texts.js';
import { projectRoot } from '../../src/paths.js';
import { debianPackage, leeCorpus } from './downloads.js';
import type { Entry } from './entry.js';
import { gcideEntries } from './gcide.js';
import type { SharedCollection } from './shared.js';
import { wordnetEntries } from './wordnet.js';

/** A path as the corpus description shows it: from the repository (../shared for the shared collections), not this machine's. */
export const shownPath = (p: string): string => path.relative(projectRoot, p) || '.';

/** Longer passages are cut: the encoder reads at most its max_tokens (256 for MiniLM) anyway. */
export const MAX_CHARS = 1000;
export const MIN_CHARS = 20;

export interface Passage {
  id: string;
  source: string;
  text: string;
  /** The normalized body: what a pseudo-query is made from. */
  gist: string;
}

export const normalize = (text: string) => text.replace(/\s+/g, ' ').trim();

/** `text` cut to at most `max` characters, at the last white space before the limit when there is one. */
export function cut(text: string, max = MAX_CHARS): string {
  if (text.length <= max) return text;
  const space = text.lastIndexOf(' ', max);
  return text.slice(0, space > max / 2 ? space : max);
}

/** Passages of one source's entries, normalized and cut (not yet filtered). */
export function toPassages(source: string, entries: readonly Entry[]): Passage[] {
  return entries.map(({ id, head, body }) => {
    const gist = normalize(body);
    const h = normalize(head);
    return { id, source, text: cut(h ? `${h}: ${gist}` : gist), gist };
  });
}

/** Drops the short passages and the exact repeats; counts what each rule dropped. */
export function filterPassages(passages: readonly Passage[]): { kept: Passage[]; short: number; duplicates: number } {
  const seen = new Set<string>();
  const kept: Passage[] = [];
  let short = 0;
  let duplicates = 0;
  for (const p of passages) {
    if (p.text.length < MIN_CHARS) short++;
    else if (seen.has(p.text)) duplicates++;
    else {
      seen.add(p.text);
      kept.push(p);
    }
  }
  return { kept, short, duplicates };
}

export interface Gathered {
  passages: Passage[];
  /** Where each source came from (package versions, files), for the description. */
  provenance: Record<string, string>;
  notices: string[];
}

/**
 * The full corpus's sources: WordNet 3.0 glosses and GCIDE articles (Debian packages, downloaded
 * into `debsDir` once), the Lee corpus (gensim wheel), and the shared BEIR collections.
 */
export function gatherFull(debsDir: string, shared: readonly SharedCollection[], log: (m: string) => void): Gathered {
  const wordnet = debianPackage('wordnet-base', debsDir, log);
  const gcide = debianPackage('dict-gcide', debsDir, log);
  const provenance: Record<string, string> = {
    wordnet: `WordNet 3.0 synset glosses (Debian ${wordnet.deb})`,
    gcide: `GCIDE dictionary articles (Debian ${gcide.deb})`,
  };
  const passages = [
    ...toPassages('wordnet', wordnetEntries(path.join(wordnet.root, 'usr', 'share', 'wordnet'))),
    ...toPassages('gcide', gcideEntries(path.join(gcide.root, 'usr', 'share', 'dictd'))),
  ];
  const notices: string[] = [];
  try {
    const articles = leeCorpus(log).toString('utf8').split('\n');
    passages.push(...toPassages('lee', articles.map((body, i) => ({ id: `lee:${i + 1}`, head: '', body }))));
    provenance.lee = 'Lee background corpus, ABC news articles (gensim 4.4.0 wheel)';
  } catch (e) {
    notices.push(`the Lee corpus is left out: ${(e as Error).message}`);
  }
  for (const c of shared) {
    passages.push(...toPassages(c.name, c.documents));
    provenance[c.name] = `${c.name} passages (BEIR collection in ${shownPath(c.dir)})`;
  }
  return { passages, provenance, notices };
}

/**
 * The smoke corpus's sources, all inside the repository (no network): the test fixtures' texts and
 * the encoder choice's probe texts, plus the first `sharedPerCollection` passages of each shared
 * collection present.
 */
export function gatherSmoke(shared: readonly SharedCollection[], sharedPerCollection: number): Gathered {
  const fixture = (name: string) => JSON.parse(readFileSync(path.join(projectRoot, 'test', 'fixtures', name), 'utf8')) as unknown;
  const parity = fixture('parity-texts.json') as string[];
  const cases = fixture('document-text-cases.json') as { title: string | null; text: string }[];
  const texts = [...parity, ...cases.map((c) => documentText({ title: c.title ?? '', text: c.text })), ...PROBE_PASSAGES, ...PROBE_QUERIES];
  const passages = toPassages(
    'fixtures',
    texts.map((body, i) => ({ id: `fixtures:${i + 1}`, head: '', body })),
  );
  const provenance: Record<string, string> = { fixtures: 'test fixture and probe texts of the repository' };
  for (const c of shared) {
    passages.push(...toPassages(c.name, c.documents.slice(0, sharedPerCollection)));
    provenance[c.name] = `the first ${sharedPerCollection} ${c.name} passages`;
  }
  return { passages, provenance, notices: [] };
}
