/** What the user types in the console's boxes, read into API bodies. */

/** Parses the filter box: a JSON object, or `key=value` pairs separated by commas. */
export function parseFilter(text: string): Record<string, unknown> | undefined {
  const t = text.trim();
  if (t === '') return undefined;
  if (t.startsWith('{')) return JSON.parse(t) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const pair of t.split(',')) {
    const i = pair.indexOf('=');
    if (i <= 0) throw new Error(`"${pair.trim()}" is not key=value`);
    const raw = pair.slice(i + 1).trim();
    let value: unknown = raw;
    if (raw === 'true' || raw === 'false' || raw === 'null' || /^-?\d+(\.\d+)?$/.test(raw)) value = JSON.parse(raw);
    out[pair.slice(0, i).trim()] = value;
  }
  return out;
}

/** Documents typed in the add box: one text per line, or JSON lines {"id", "text", "metadata"}. */
export function parseDocuments(text: string, stamp = Date.now().toString(36)): { id: string; text: string; metadata?: Record<string, unknown> }[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .map((line, i) => (line.startsWith('{') ? (JSON.parse(line) as { id: string; text: string; metadata?: Record<string, unknown> }) : { id: `${stamp}-${i + 1}`, text: line }));
}

