import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';

export type Cleanup = () => Promise<void> | void;

/**
 * Cleanup for one test file: closers pushed onto `cleanups` run after each test, newest first; `tempDir` makes a
 * directory that goes with them.
 */
export function afterEachCleanup(): { cleanups: Cleanup[]; tempDir(prefix: string): string } {
  const cleanups: Cleanup[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });
  return {
    cleanups,
    tempDir(prefix) {
      const dir = mkdtempSync(join(tmpdir(), prefix));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      return dir;
    },
  };
}
