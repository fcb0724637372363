// Builds the web console (console/ → dist/console/) with esbuild: one JavaScript and one CSS file
// named by content hash, and index.html naming them. Prints the gzipped size against its budget
// (200 kB) and fails past it, so that the console stays small enough to load on a slow link.
//
//   node scripts/build-console.mjs        (npm run build runs it after tsc)
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'dist', 'console');
const BUDGET_GZIP_BYTES = 200_000;

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const result = await build({
  entryPoints: { app: path.join(root, 'console', 'src', 'main.tsx') },
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['chrome110', 'firefox115', 'safari16'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  entryNames: '[name].[hash]',
  outdir: out,
  metafile: true,
  sourcemap: false,
  legalComments: 'linked',
  logLevel: 'warning',
});
const files = Object.keys(result.metafile.outputs).map((f) => path.relative(out, path.resolve(root, f)));
const js = files.find((f) => f.endsWith('.js'));
const css = files.find((f) => f.endsWith('.css'));
if (!js || !css) throw new Error(`esbuild wrote no app bundle: ${files.join(', ')}`);
const html = readFileSync(path.join(root, 'console', 'index.html'), 'utf8').replace('{{js}}', js).replace('{{css}}', css);
writeFileSync(path.join(out, 'index.html'), html);

let gzipped = 0;
for (const f of [js, css, 'index.html']) gzipped += gzipSync(readFileSync(path.join(out, f)), { level: 9 }).length;
/** @param {number} n */
const kb = (n) => `${(n / 1000).toFixed(1)} kB`;
console.log(`console: dist/console/ (${js}, ${css}): ${kb(gzipped)} gzipped (budget ${kb(BUDGET_GZIP_BYTES)})`);
if (gzipped > BUDGET_GZIP_BYTES) {
  console.error(`the console bundle is over its budget: ${kb(gzipped)} gzipped > ${kb(BUDGET_GZIP_BYTES)}`);
  process.exit(1);
}
