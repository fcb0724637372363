// Writes contracts/*.schema.json from the schemas declared in src/contracts/: `npm run contracts`.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { contractFiles, contractsDir } from '../src/contracts/write.js';

for (const [name, text] of Object.entries(contractFiles())) {
  writeFileSync(path.join(contractsDir, name), text);
  console.log(`wrote ${path.relative(process.cwd(), path.join(contractsDir, name))}`);
}
