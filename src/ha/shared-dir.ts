import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';

/** The files a replica generates on first start that every replica must share (relative to the dir). */
const KEYS = [
  'encryption-key',
  path.join('identity', 'signing-key.json'),
  // The instance identity CA: the key first, so that a copied certificate always has its key beside it.
  path.join('instance-identity', 'ca.key'),
  path.join('instance-identity', 'ca.crt'),
];

/**
 * When KILN_SHARED_DIR is set on an installation that ran without it, its generated keys are still in the data
 * dir: a new key would make every sealed secret unreadable and every issued token invalid. So a key missing from
 * the shared dir is copied there from the data dir (never overwriting one a replica already put there). Blobs are
 * not moved (they may be large): a data dir that still has them gets a warning naming the folder to move.
 */
export function adoptDataDirKeys(dataDir: string, sharedDir: string, log: Logger): void {
  if (path.resolve(dataDir) === path.resolve(sharedDir)) return;
  for (const key of KEYS) {
    const from = path.join(dataDir, key);
    const to = path.join(sharedDir, key);
    if (!fs.existsSync(from) || fs.existsSync(to)) continue;
    fs.mkdirSync(path.dirname(to), { recursive: true, mode: 0o700 });
    try {
      fs.copyFileSync(from, to, fs.constants.COPYFILE_EXCL);
      fs.chmodSync(to, 0o600);
      log.info({ from, to }, 'copied a generated key from the data dir into KILN_SHARED_DIR');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  const oldBlobs = path.join(dataDir, 'blobs');
  if (fs.existsSync(oldBlobs) && fs.readdirSync(oldBlobs).length > 0) {
    log.warn({ oldBlobs, sharedBlobs: path.join(sharedDir, 'blobs') }, 'the data dir still holds blobs, but KILN_SHARED_DIR is set: move them into the shared dir');
  }
}
