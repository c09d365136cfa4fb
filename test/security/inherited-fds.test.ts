import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.ts';
import { until } from '../helpers/until.ts';

/**
 * A descriptor Kiln inherits without close-on-exec would pass into every app, task and staging run (bubblewrap
 * hands descriptors through as they are), and an app could read that file through /proc/self/fd without the
 * sandbox ever binding it. `kiln serve` closes such descriptors before it starts anything.
 */
describe('descriptors inherited by kiln serve', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-fds-'));
  const secret = path.join(dir, 'secret-key');
  fs.writeFileSync(secret, 'not for apps');
  let server: ServerProcess | undefined;
  afterAll(async () => {
    await server?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('are closed before Kiln starts anything, and said so in the log', async () => {
    // Started by a shell that left the file open on descriptor 40 (as `exec 40<file` does: no close-on-exec).
    server = await startServerProcess({ openFiles: { 40: secret } });
    const pid = server.child.pid!;
    const open = fs.readdirSync(`/proc/${pid}/fd`).map((n) => {
      try {
        return fs.readlinkSync(`/proc/${pid}/fd/${n}`);
      } catch {
        return '';
      }
    });
    expect(open).not.toContain(secret);
    // Logged once Kiln is built, so it may follow the line that says Kiln is listening.
    const started = server;
    const warning = await until('the warning about inherited descriptors', () => started.output.find((l) => l.includes('closed file descriptors inherited')), 15_000);
    // (Whatever else the test runner's own launcher leaked is closed too.)
    expect((JSON.parse(warning) as { fds: number[] }).fds).toContain(40);
  }, 60_000);
});
