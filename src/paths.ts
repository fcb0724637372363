/** Where the project's own files are, from src/ (tsx) or dist/src/ (built) alike. */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'migrations'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the qembed project root (package.json beside migrations/)');
    dir = up;
  }
}

export const projectRoot = findRoot();
export const migrationsDir = path.join(projectRoot, 'migrations');
export const packageVersion = (JSON.parse(readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;
/** The web console's static files, written by `npm run build` (scripts/build-console.mjs). */
export const consoleDir = path.join(projectRoot, 'dist', 'console');
