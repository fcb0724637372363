/**
 * The cursor of a document listing: the collection's id and the rowid of the last document of
 * the page, as base64url. Opaque to clients (the format may change), but checked: a cursor that
 * was not made here, or was made for another collection (one deleted and created again under the
 * same name included), is refused rather than read as some other position.
 */
import { errors } from '../errors.js';
import { MAX_ROWID } from '../store/store.js';
import { CURSOR_PATTERN } from './types.js';

export const encodeCursor = (collectionId: number, rowid: number): string => Buffer.from(`${collectionId}:${rowid}`).toString('base64url');

/** The rowid a cursor continues after; QEMBED_INVALID_CURSOR unless encodeCursor made it for this collection. */
export function decodeCursor(cursor: string, collectionId: number): number {
  const refuse = (why: string) => errors.invalidCursor(`after: ${why}; use the \`next\` of the previous page, or leave \`after\` out to start again`);
  const m = new RegExp(CURSOR_PATTERN).test(cursor) ? /^(\d{1,16}):(\d{1,16})$/.exec(Buffer.from(cursor, 'base64url').toString('latin1')) : null;
  const rowid = m ? Number(m[2]) : Number.NaN;
  // Re-encoding gives the cursor back only for the form encodeCursor writes (no leading zeros, no stray bits).
  if (!m || rowid > MAX_ROWID || encodeCursor(Number(m[1]), rowid) !== cursor) throw refuse('not a cursor of a document listing');
  if (Number(m[1]) !== collectionId) throw refuse('the cursor is from another collection (or one deleted since)');
  return rowid;
}
