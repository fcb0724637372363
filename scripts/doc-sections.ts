/**
 * Sections of a generated page that another command writes: docs/quality.md is written whole by
 * `npm run quality:report`, but its "Recall at scale" section comes from `npm run bench:recall`
 * (an hour of another corpus). Each such section sits between two HTML comments naming it, so
 * either command rewrites its own part and keeps the other's.
 */
/** bench:recall's section of docs/quality.md. */
export const RECALL_AT_SCALE = 'recall-at-scale';
/** bench:recall-service's section of docs/quality.md. */
export const RECALL_SERVICE = 'recall-service';
/** bench:recall's section of docs/compact-codes.md (with --transforms). */
export const TRANSFORMS_AT_SCALE = 'transforms-at-scale';
/** The second model's figures in docs/quality.md (all-mpnet-base-v2: `npm run eval -- --bundle models/mpnet`). */
export const SECOND_MODEL = 'second-model';
/** The sections of docs/quality.md that other commands write, in the page's order. */
export const QUALITY_PAGE_SECTIONS = [RECALL_AT_SCALE, RECALL_SERVICE, SECOND_MODEL];

const start = (name: string) => `<!-- section ${name}: written by its command, kept by the others -->`;
const end = (name: string) => `<!-- /section ${name} -->`;

/** The section `name` of `doc` with its markers, or undefined when `doc` has none. */
export function sectionOf(doc: string, name: string): string | undefined {
  const i = doc.indexOf(start(name));
  const j = doc.indexOf(end(name));
  return i >= 0 && j > i ? doc.slice(i, j + end(name).length) : undefined;
}

/** `doc` with section `name` replaced by `body` (markers added), or `body` appended when it had none. */
export function withSection(doc: string, name: string, body: string): string {
  const section = `${start(name)}\n${body.trim()}\n${end(name)}`;
  const old = sectionOf(doc, name);
  return old === undefined ? `${doc.trimEnd()}\n\n${section}\n` : doc.replace(old, () => section);
}
