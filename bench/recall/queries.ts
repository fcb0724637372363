/**
 * The recall corpus's pseudo-queries: short keyword queries made from passages that are held out
 * of the corpus, so that no query has its own source text among the passages searched.
 *
 * Hold-out: among the passages of the hold-out sources whose gist yields a query (below), the
 * `count` with the smallest sha256(`recall-holdout:` + id), skipping a passage whose query repeats
 * an earlier one. Deterministic, and independent of the order in which passages were gathered.
 *
 * Query rule (pseudoQuery): the gist (gloss, definition or article) without leading sense numbers
 * and parenthesized labels, parenthesized asides removed, cut at its first clause end (. ; : ! ?
 * or a dash); its words minus English stop words; the first 8 of them, when there are at least 3.
 * A WordNet gloss "a plant or animal that is atypically small" gives "plant animal atypically
 * small"; GCIDE's "1. The fleshy pome or fruit of a rosaceous tree (Pyrus malus) cultivated in
 * numberless varieties..." gives "fleshy pome fruit rosaceous tree cultivated numberless varieties".
 */
import { createHash } from 'node:crypto';
import type { Passage } from './texts.js';

export const MIN_QUERY_WORDS = 3;
export const MAX_QUERY_WORDS = 8;

// Function words and the commonest auxiliaries: what a person typing a search query leaves out.
const STOP_WORDS = new Set(
  (
    'a an the and or nor but if then else than as at by for from in into of off on onto out over to up upon with within without ' +
    'about above after against along among around before behind below beneath beside between beyond during except through ' +
    'toward towards under until via is are was were be been being am do does did done doing have has had having ' +
    'can could may might must shall should will would it its it\'s this that these those there here which who whom whose what ' +
    'when where why how all any each either neither both some such no not only own same so too very just also etc ' +
    'i me my we us our you your he him his she her they them their one\'s oneself itself himself herself themselves ' +
    'something someone somebody anything anyone usually especially often esp e.g i.e'
  ).split(' '),
);

/** The pseudo-query made from a passage's gist, or undefined when it has fewer than 3 content words. */
export function pseudoQuery(gist: string): string | undefined {
  let text = gist.trim();
  // Leading "1.", "(a)", "(Zool.)", stray punctuation: sense numbers and labels, not content.
  for (let before = ''; before !== text; ) {
    before = text;
    text = text.replace(/^(?:\d+\.|\([^)]*\)|[,;:.\s-]+)\s*/, '');
  }
  const clause = text.replace(/\([^)]*\)/g, ' ').split(/[.;:!?]|--|\s-\s/)[0] ?? '';
  const words = clause
    .split(/[^\p{L}\p{N}'’-]+/u)
    .map((w) => w.replace(/^['’-]+|['’-]+$/g, ''))
    .filter((w) => w.length > 1 && !STOP_WORDS.has(w.toLowerCase().replace('’', "'")));
  return words.length >= MIN_QUERY_WORDS ? words.slice(0, MAX_QUERY_WORDS).join(' ') : undefined;
}

export interface PseudoQuery {
  id: string;
  source: string;
  text: string;
  /** The id of the held-out passage it was made from. */
  from: string;
}

const holdOutKey = (id: string) => createHash('sha256').update(`recall-holdout:${id}`).digest('hex');

/** Splits `passages` into the corpus and `count` held-out passages' pseudo-queries (see above). */
export function holdOut(passages: readonly Passage[], count: number, sources: ReadonlySet<string>): { corpus: Passage[]; queries: PseudoQuery[] } {
  const candidates = passages
    .filter((p) => sources.has(p.source))
    .map((p) => ({ p, key: holdOutKey(p.id) }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const held = new Set<string>();
  const used = new Set<string>();
  const queries: PseudoQuery[] = [];
  for (const { p } of candidates) {
    if (queries.length === count) break;
    const text = pseudoQuery(p.gist);
    if (!text || used.has(text.toLowerCase())) continue;
    used.add(text.toLowerCase());
    held.add(p.id);
    queries.push({ id: `pseudo:${p.id}`, source: p.source, text, from: p.id });
  }
  return { corpus: passages.filter((p) => !held.has(p.id)), queries };
}
