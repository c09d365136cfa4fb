import fs from 'node:fs/promises';
import path from 'node:path';
import { LoginError, NetworkError } from './api-client.ts';
import { requestToken, type CliIO, type Session } from './session.ts';
import { chooseTarget } from './targeting.ts';

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * The first ten minutes: right after `npm start`, `kiln push` in the same folder works without a separate
 * `kiln login`. When nobody is logged in, the API is on this machine and the first start's password file
 * (`.kiln/initial-admin-password`, or the one in $KILN_DATA_DIR) is readable here, the CLI logs in as that
 * admin and says so. Whoever can read that file already holds the password; anything else (a remote API, a
 * changed password, no file) leaves the user to `kiln login`.
 */
export async function loginAsLocalAdmin(session: Session, io: CliIO): Promise<boolean> {
  if (session.config.accessToken) return false;
  if (!LOCAL_HOSTS.has(new URL(session.api).hostname)) return false;
  const file = path.resolve(io.env.KILN_DATA_DIR || '.kiln', 'initial-admin-password');
  let password: string;
  try {
    password = (await fs.readFile(file, 'utf8')).trim();
  } catch {
    return false;
  }
  const username = io.env.KILN_ADMIN_USER || 'admin';
  try {
    const root = await session.client.root();
    const tokens = await requestToken(root.login, { grant_type: 'password', username, password }, io.fetch);
    Object.assign(session.config, { api: session.api, loginUrl: root.login, logCacheUrl: root.logCache, username });
    session.keepTokens(tokens);
    await chooseTarget(session, undefined, undefined);
  } catch (err) {
    if (err instanceof LoginError || err instanceof NetworkError) return false;
    throw err;
  }
  await session.save();
  io.err.write(`Logged in to ${session.api} as ${username} with the password in ${path.relative(process.cwd(), file) || file} (use 'kiln login' to log in as someone else).\n`);
  return true;
}
