import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config/config.ts';
import { startKiln } from '../src/server.ts';

const PASSWORD = 'bench-password-123';

/** Starts Kiln in this process on a free port with a fresh SQLite data dir, and logs in as admin. */
export async function startBenchKiln(name: string) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `kiln-bench-${name}-`));
  const config = loadConfig({ KILN_DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', KILN_ADMIN_PASSWORD: PASSWORD, LOG_LEVEL: 'silent' });
  const kiln = await startKiln(config);
  const token = (await kiln.identity.passwordGrant('admin', PASSWORD)).access_token;
  return { dataDir, config, kiln, api: kiln.url, apiPort: new URL(kiln.url).port, token };
}
