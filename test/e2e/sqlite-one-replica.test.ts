import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.ts';

/** With SQLite exactly one Kiln may run against a database file: a second one says so and exits. */
describe('a second replica against the same SQLite file', () => {
  let first: ServerProcess | undefined;
  const other = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-second-'));
  afterAll(async () => {
    await first?.stop();
    fs.rmSync(other, { recursive: true, force: true });
  });

  it('refuses to start, naming the first; starts once the first is gone', async () => {
    first = await startServerProcess();
    const file = path.join(first.dataDir, 'kiln.sqlite');
    const env = { DATABASE_URL: `sqlite:${file}`, KILN_ADMIN_PASSWORD: 'second-replica-pw' };
    const refused = await startServerProcess({ dataDir: other, env }).then(
      async (s) => {
        await s.stop();
        return 'started';
      },
      (err: Error) => err.message,
    );
    expect(refused).toContain(`Another Kiln (pid ${first.child.pid} on ${os.hostname()}`);
    expect(refused).toContain('With SQLite exactly one replica may run');
    // SIGKILL leaves the claim behind; the next start takes it over.
    await first.stop({ keepData: true, signal: 'SIGKILL' });
    const second = await startServerProcess({ dataDir: other, env });
    expect(((await (await fetch(`${second.url}/readyz`)).json()) as { role: string }).role).toBe('leader');
    await second.stop();
    fs.rmSync(first.dataDir, { recursive: true, force: true });
    first = undefined;
  }, 120_000);
});
