import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(import.meta.dirname, '../../src');

/** Every .ts file below a folder of src/. */
function filesUnder(folder: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) out.push(p);
    }
  };
  walk(path.join(SRC, folder));
  return out;
}

/** The src/ folders a file imports from (relative specifiers only, type-only imports included). */
function importedFolders(file: string): Array<{ spec: string; target: string }> {
  const text = fs.readFileSync(file, 'utf8');
  const out: Array<{ spec: string; target: string }> = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g)) {
    const spec = (m[1] ?? m[2])!;
    out.push({ spec, target: path.relative(SRC, path.resolve(path.dirname(file), spec)) });
  }
  return out;
}

/** `file → spec` for each import from `folder` that reaches into one of `forbidden`. */
function violations(folder: string, forbidden: string[]): string[] {
  const found: string[] = [];
  for (const file of filesUnder(folder)) {
    for (const { spec, target } of importedFolders(file)) {
      if (forbidden.some((f) => target === f || target.startsWith(`${f}/`))) found.push(`${path.relative(SRC, file)} → ${spec}`);
    }
  }
  return found;
}

describe('layers (DESIGN.md "Layers and rooms")', () => {
  it('the import scan sees imports, so an empty answer means something', () => {
    expect(violations('controllers', ['store']).length).toBeGreaterThan(0);
  });

  it('controllers import nothing from services/: what they share with use-cases lives in lifecycle/', () => {
    expect(violations('controllers', ['services', 'api'])).toEqual([]);
  });

  it('lifecycle/ imports neither services/, api/ nor controllers/', () => {
    expect(violations('lifecycle', ['services', 'api', 'controllers'])).toEqual([]);
  });

  it('services/ import neither api/ nor controllers/', () => {
    expect(violations('services', ['api', 'controllers'])).toEqual([]);
  });

  it('store/ and domain/ import nothing from the layers above them', () => {
    expect(violations('store', ['services', 'lifecycle', 'api', 'controllers'])).toEqual([]);
    expect(violations('domain', ['store', 'services', 'lifecycle', 'api', 'controllers'])).toEqual([]);
  });
});
