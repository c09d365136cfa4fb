import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const repo = path.resolve(import.meta.dirname, '../..');

/**
 * A Kiln that is built (controllers running) but cannot listen must stop and exit with an error, not linger
 * reconciling with no API — which is what a restarted Kiln did when its mTLS listener failed to start.
 */
describe('kiln serve when it cannot listen', () => {
  it('exits 1 with the reason when the router mTLS port is taken', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const taken = (blocker.address() as net.AddressInfo).port;
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-startfail-'));
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve'], {
        cwd: repo,
        env: { ...process.env, PORT: '0', HOST: '127.0.0.1', KILN_DATA_DIR: dataDir, LOG_LEVEL: 'info', KILN_ADMIN_PASSWORD: '', DATABASE_URL: '', KILN_ROUTER_MTLS_PORT: String(taken) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d) => (output += String(d)));
      child.stderr.on('data', (d) => (output += String(d)));
      const code = await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve(-1);
        }, 60_000);
        child.once('exit', (c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });
      expect(code, output).toBe(1);
      expect(output).toMatch(/EADDRINUSE/);
      expect(output).not.toMatch(/Kiln is listening/);
    } finally {
      blocker.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});
