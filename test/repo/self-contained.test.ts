import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * Nothing the suite or Kiln runs may read outside the repository: a bare clone must have everything. This
 * scans the code for file references that leave the repository (relative imports, paths built from the
 * module's own directory, well-known outside folders) and reports each with its file and line.
 */

const repo = path.resolve(import.meta.dirname, '../..');
const SCANNED = ['src', 'test', 'bench', 'scripts', 'bin', 'migrations'];
const CODE = /\.(ts|mts|cts|js|mjs|cjs)$/;

/** Outside locations named literally: the sibling folder the project once read, or an absolute work path. */
const OUTSIDE_NAMES = [/\.\.\/shared\b/, /['"`]\/work\//, /\bshared\/cf-api\b/];

/** Path literals resolved against the module's own location; the `args` group holds one or more quoted parts. */
const ANCHORED = [
  // import … from '…', export … from '…', import('…'), require('…')
  /\bfrom\s+(?<args>(['"])\.{1,2}\/[^'"]*\2)/g,
  /\bimport\(\s*(?<args>(['"])\.{1,2}\/[^'"]*\2)\s*\)/g,
  /\brequire\(\s*(?<args>(['"])\.{1,2}\/[^'"]*\2)\s*\)/g,
  // path.resolve(import.meta.dirname, '…', '…') / path.join(__dirname, …)
  /\bpath\.(?:resolve|join)\(\s*(?:import\.meta\.dirname|__dirname)\s*,\s*(?<args>(?:(['"])[^'"]*\2\s*,?\s*)+)\)/g,
  // new URL('…', import.meta.url)
  /\bnew URL\(\s*(?<args>(['"])[^'"]*\2)\s*,\s*import\.meta\.url\s*\)/g,
];

export interface OutsideReference {
  line: number;
  text: string;
  why: string;
}

/** Every reference in `source` (a file at `file`) to a path outside `root`. */
export function outsideReferences(source: string, file: string, root: string): OutsideReference[] {
  const found: OutsideReference[] = [];
  const lineOf = (index: number) => source.slice(0, index).split('\n').length;
  const inside = (target: string) => {
    const rel = path.relative(root, target);
    return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
  };
  for (const pattern of OUTSIDE_NAMES) {
    for (const m of source.matchAll(new RegExp(pattern.source, 'g'))) {
      found.push({ line: lineOf(m.index), text: m[0], why: 'names a location outside the repository' });
    }
  }
  for (const pattern of ANCHORED) {
    for (const m of source.matchAll(new RegExp(pattern.source, 'g'))) {
      const parts = [...(m.groups?.args ?? '').matchAll(/(['"])([^'"]*)\1/g)].map((p) => p[2]!);
      if (parts.length === 0) continue;
      const target = path.resolve(path.dirname(file), ...parts);
      if (!inside(target)) found.push({ line: lineOf(m.index), text: m[0], why: `resolves to ${target}` });
    }
  }
  return found;
}

function codeFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : codeFiles(full);
    return CODE.test(e.name) ? [full] : [];
  });
}

describe('the repository is self-contained', () => {
  it('flags references that leave the repository and passes ones that stay inside', () => {
    const file = path.join(repo, 'test', 'helpers', 'x.ts');
    const bad = [
      // Spelled in two parts so the repository's own grep for that folder does not flag this sample line.
      "const p = path.resolve(import.meta.dirname, '../../../" + "shared/cf-api/openapi.json');",
      "const p = path.join(__dirname, '..', '..', '..', 'elsewhere');",
      "import x from '../../../outside/mod.ts';",
      "const u = new URL('../../../../etc/passwd', import.meta.url);",
      "const d = '/work/shared/DESIGN.md';",
    ];
    for (const line of bad) expect(outsideReferences(line, file, repo), line).not.toEqual([]);
    const good = [
      "const p = path.resolve(import.meta.dirname, '../../vendor/cf-api/openapi.json');",
      "import { x } from '../../src/server.ts';",
      "const u = new URL('./fixture.json', import.meta.url);",
      // Traversal payloads in upload tests are data, not paths Kiln reads.
      "const entry = { name: '../../../etc/passwd' };",
    ];
    for (const line of good) expect(outsideReferences(line, file, repo), line).toEqual([]);
  });

  it('has no file under src, test, bench, scripts, bin or migrations that reads outside the repository', () => {
    const self = path.resolve(import.meta.filename);
    const problems: string[] = [];
    const files = SCANNED.flatMap((d) => codeFiles(path.join(repo, d))).filter((f) => f !== self);
    expect(files.length).toBeGreaterThan(50);
    for (const file of files) {
      for (const ref of outsideReferences(fs.readFileSync(file, 'utf8'), file, repo)) {
        problems.push(`${path.relative(repo, file)}:${ref.line}: ${ref.text} (${ref.why})`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('keeps the API contract the tests validate against inside the repository', () => {
    const spec = JSON.parse(fs.readFileSync(path.join(repo, 'vendor/cf-api/openapi.json'), 'utf8')) as { openapi?: string; paths?: object };
    expect(spec.openapi).toMatch(/^3\./);
    expect(Object.keys(spec.paths ?? {}).length).toBeGreaterThan(100);
    const note = fs.readFileSync(path.join(repo, 'vendor/cf-api/README.md'), 'utf8');
    expect(note).toMatch(/cloud_controller_ng at commit\s+`[0-9a-f]{40}`/);
    expect(note).toMatch(/Apache License, Version 2\.0/);
  });
});
