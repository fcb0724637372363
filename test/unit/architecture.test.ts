/**
 * The layering of src/ (docs/architecture.md), checked on the import statements of every file:
 * dependencies point one way, only the HTTP layer knows fastify, and no module imports itself
 * back through others.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/paths.js';

const src = path.join(projectRoot, 'src');

/** Every .ts file under src/, relative to it, with the src-relative files and packages it imports. */
function importGraph(): Map<string, { local: string[]; packages: string[] }> {
  const files = (readdirSync(src, { recursive: true }) as string[]).filter((f) => (f.endsWith('.ts') || f.endsWith('.mjs')) && !f.endsWith('.d.ts'));
  const graph = new Map<string, { local: string[]; packages: string[] }>();
  for (const file of files) {
    const text = readFileSync(path.join(src, file), 'utf8');
    const specifiers = [...text.matchAll(/^(?:import|export)\s[^;]*?from\s+'([^']+)'/gms)].map((m) => m[1]!);
    const local = specifiers.filter((s) => s.startsWith('.')).map((s) => path.normalize(path.join(path.dirname(file), s)).replace(/\.js$/, '.ts'));
    const packages = specifiers.filter((s) => !s.startsWith('.') && !s.startsWith('node:'));
    graph.set(file, { local, packages });
  }
  return graph;
}

/** The first import cycle found (a list of files, first = last), or undefined. */
export function findCycle(edges: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): string[] | undefined => {
    if (state.get(node) === 'done') return undefined;
    if (state.get(node) === 'visiting') return [...stack.slice(stack.indexOf(node)), node];
    state.set(node, 'visiting');
    stack.push(node);
    for (const next of edges.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(node, 'done');
    return undefined;
  };
  for (const node of edges.keys()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return undefined;
}

const layer = (file: string) => file.split(path.sep)[0]!.replace(/\.(ts|mjs|js)$/, '');

/**
 * What each part of src/ may import, read from docs/architecture.md's table (so the test says
 * exactly what the document draws): `anything`, `nothing`, `shared modules only`, or a list of
 * folders. A part's names are its file (`app.ts` → app) or folder (`http/` → http).
 */
function documentedLayers(): { allowed: Map<string, string[] | 'anything'>; shared: string[] } {
  const doc = readFileSync(path.join(projectRoot, 'docs', 'architecture.md'), 'utf8');
  const table = doc.slice(doc.indexOf('<!-- layers:start'), doc.indexOf('<!-- layers:end -->'));
  const allowed = new Map<string, string[] | 'anything'>();
  const shared: string[] = [];
  for (const row of table.split('\n').filter((l) => l.startsWith('| `'))) {
    const [names, , imports] = row.split(' | ').map((c) => c.replace(/^\| |\|$/g, '').trim());
    const parts = [...names!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!.replace(/\/$/, '').replace(/\.(ts|mjs)$/, ''));
    const may = imports === 'anything' ? 'anything' : imports === 'nothing' || imports === 'shared modules only' ? [] : imports!.split(', ');
    if (imports === 'shared modules only') shared.push(...parts);
    for (const part of parts) allowed.set(part, may);
  }
  return { allowed, shared };
}

describe('the architecture of src/', () => {
  const graph = importGraph();

  it('finds cycles when there are some (the checker itself)', () => {
    expect(findCycle(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']]]))).toEqual(['a', 'b', 'c', 'a']);
    expect(findCycle(new Map([['a', ['b']], ['b', []]]))).toBeUndefined();
    expect(graph.size).toBeGreaterThan(40);
  });

  it('has no import cycle', () => {
    const edges = new Map([...graph].map(([file, { local }]) => [file, local]));
    expect(findCycle(edges)).toBeUndefined();
  });

  it('has a row in docs/architecture.md for every part of src/, and reads the table right', () => {
    const { allowed, shared } = documentedLayers();
    expect(allowed.get('search')).toEqual(['quality', 'first-stage', 'transform', 'encoder', 'quantization', 'store']);
    expect(allowed.get('composition')).toBe('anything');
    expect(shared).toContain('errors');
    const parts = new Set([...graph.keys()].map(layer));
    expect([...parts].filter((p) => !allowed.has(p))).toEqual([]);
    expect([...allowed.keys()].filter((p) => !parts.has(p))).toEqual([]);
  });

  it('points dependencies one way, as docs/architecture.md draws them', () => {
    const { allowed, shared } = documentedLayers();
    const wrong: string[] = [];
    for (const [file, { local }] of graph) {
      const from = layer(file);
      const may = allowed.get(from);
      if (may === 'anything') continue;
      for (const target of local) {
        const to = layer(target);
        if (to === from || shared.includes(to)) continue;
        if (!may?.includes(to)) wrong.push(`${file} imports ${target}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('keeps fastify in the HTTP layer (and app.ts, service.ts that compose it)', () => {
    const wrong = [...graph]
      .filter(([file, { packages }]) => packages.some((p) => p === 'fastify' || p.startsWith('@fastify/')) && layer(file) !== 'http' && !['app', 'service'].includes(layer(file)))
      .map(([file]) => file);
    expect(wrong).toEqual([]);
  });
});
