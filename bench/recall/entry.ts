/** A passage as a source parser yields it, before normalization and filtering (texts.ts). */
export interface Entry {
  /** Stable across runs on the same inputs: `<source>:<key in that source>`. */
  id: string;
  /** What the body defines (lemmas, headword), or '' for running text. */
  head: string;
  /** The definition or the text itself: what a pseudo-query is made from (queries.ts). */
  body: string;
}
