/**
 * WordNet 3.0's glosses (Debian's wordnet-base: /usr/share/wordnet/data.{noun,verb,adj,adv}):
 * one entry per synset, its lemmas as the head and its gloss (definition, then quoted examples)
 * as the body. Format: wndb(5WN); lines that start with two spaces are the license header.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Entry } from './entry.js';

const PARTS_OF_SPEECH = ['noun', 'verb', 'adj', 'adv'] as const;

/** The synsets of the WordNet data files in `dir`, in file order. */
export function wordnetEntries(dir: string): Entry[] {
  const entries: Entry[] = [];
  for (const pos of PARTS_OF_SPEECH) {
    const file = path.join(dir, `data.${pos}`);
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (line === '' || line.startsWith('  ')) continue;
      const bar = line.indexOf(' | ');
      if (bar < 0) throw new Error(`${file}: a synset without a gloss: ${line.slice(0, 80)}`);
      // synset_offset lex_filenum ss_type w_cnt (hex) word lex_id [word lex_id...] ...
      const fields = line.slice(0, bar).split(' ');
      const count = Number.parseInt(fields[3]!, 16);
      const lemmas = new Set<string>();
      for (let i = 0; i < count; i++) {
        // Adjective lemmas may carry a syntactic marker: "ablaze(p)".
        lemmas.add(fields[4 + 2 * i]!.replace(/\([a-z]+\)$/, '').replace(/_/g, ' '));
      }
      entries.push({ id: `wordnet:${pos}:${fields[0]}`, head: [...lemmas].join(', '), body: line.slice(bar + 3) });
    }
  }
  return entries;
}
