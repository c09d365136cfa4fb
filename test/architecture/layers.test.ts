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

/**
 * The value imports of a source text (relative specifiers only): `import type …`, `export type …` and imports whose
 * every named specifier is `type` are left out, as they vanish at compile time.
 */
function valueImportsOf(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(import|export)\b(\s+type\b)?([^'"]*?)from\s*['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g)) {
    if (m[5]) {
      out.push(m[5]);
      continue;
    }
    if (m[2]) continue;
    const braces = /^\s*\{([^}]*)\}\s*$/.exec(m[3]!);
    const names = braces ? braces[1]!.split(',').map((n) => n.trim()).filter((n) => n !== '') : undefined;
    if (names && names.length > 0 && names.every((n) => n.startsWith('type '))) continue;
    out.push(m[4]!);
  }
  return out;
}

/** `file → spec` for each value import from `folder` that reaches into one of `forbidden`. */
function valueViolations(folder: string, forbidden: string[]): string[] {
  const found: string[] = [];
  for (const file of filesUnder(folder)) {
    for (const spec of valueImportsOf(fs.readFileSync(file, 'utf8'))) {
      const target = path.relative(SRC, path.resolve(path.dirname(file), spec));
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

  it('the value-import scan tells type-only imports from value imports', () => {
    const text = [
      "import type { Row } from '../../store/schema.ts';",
      "import { type Page } from '../../store/list-query.ts';",
      "export type { Metadata } from '../../domain/metadata.ts';",
      "import { loadMetadata } from '../../store/metadata.ts';",
      "import { type Kysely, sql } from '../../store/db.ts';",
      "import * as store from '../../store/store.ts';",
      "export { newGuid } from '../../store/store.ts';",
      "const m = await import('../../store/metadata.ts');",
    ].join('\n');
    expect(valueImportsOf(text)).toEqual(['../../store/metadata.ts', '../../store/db.ts', '../../store/store.ts', '../../store/store.ts', '../../store/metadata.ts']);
    expect(valueViolations('services', ['store']).length).toBeGreaterThan(0);
  });

  it('api/resources value-imports nothing from store/: handlers parse, call a service and present (types may be shared)', () => {
    expect(valueViolations('api/resources', ['store'])).toEqual([]);
  });
});
