// Rewrites the configuration table in README.md from src/config.ts: `npm run docs:config`.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { readmeWithConfigTable } from '../src/config-docs.js';
import { projectRoot } from '../src/paths.js';

const file = path.join(projectRoot, 'README.md');
writeFileSync(file, readmeWithConfigTable(readFileSync(file, 'utf8')));
console.log('wrote the configuration table into README.md');
