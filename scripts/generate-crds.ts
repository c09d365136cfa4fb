/**
 * Writes `crds/` from the zod schemas in src/kube/schemas.ts (`npm run crds`). test/kube/crds.test.ts fails
 * when the files differ from what this writes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { renderCrd } from '../src/kube/crd-files.ts';
import { generatedCrds } from '../src/kube/crds.ts';

const dir = path.resolve(import.meta.dirname, '../crds');
fs.mkdirSync(dir, { recursive: true });
for (const [file, crd] of generatedCrds()) fs.writeFileSync(path.join(dir, file), renderCrd(crd));
console.log(`wrote ${generatedCrds().size} CRDs to ${dir}`);
