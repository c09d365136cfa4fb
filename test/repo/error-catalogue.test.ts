import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CATALOGUE_FILE, renderErrorCatalogue } from '../../scripts/gen-error-catalogue.ts';

describe('the generated error catalogue', () => {
  it('matches what scripts/gen-error-catalogue.ts makes from the vendored CF error catalogues', () => {
    const { text, entries } = renderErrorCatalogue();
    expect(entries).toBeGreaterThan(250);
    // A mismatch means someone edited the generated file or the vendored YAML without regenerating.
    expect(fs.readFileSync(CATALOGUE_FILE, 'utf8')).toBe(text);
  });
});
