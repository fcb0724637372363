// Writes openapi/openapi.json from the route schemas: `npm run openapi`.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { generateOpenApi, openapiFile } from '../src/service.js';

mkdirSync(path.dirname(openapiFile), { recursive: true });
writeFileSync(openapiFile, await generateOpenApi());
console.log(`wrote ${path.relative(process.cwd(), openapiFile)}`);
