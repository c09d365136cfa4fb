import fs from 'node:fs';
import { z } from 'zod';
import type { GitCredentials } from './git-source.ts';

/**
 * Named git credentials for GitSources (KILN_GIT_CREDENTIALS_FILE): a JSON object of
 * `{"NAME": {"username": "…", "password": "…"}}` or `{"NAME": {"sshPrivateKeyFile": "/path/to/key"}}`. A GitSource
 * names an entry (`credential`); the secret itself never enters the database or the API. Read at each use, so
 * an edited file applies at the next poll.
 */
const Entry = z.union([
  z.object({ username: z.string(), password: z.string() }).strict(),
  z.object({ sshPrivateKeyFile: z.string().min(1) }).strict(),
]);
const FileSchema = z.record(z.string(), Entry);

export function credentialRegistry(file: string | undefined): (name: string) => GitCredentials | undefined {
  return (name) => {
    if (!file) return undefined;
    const parsed = FileSchema.parse(JSON.parse(fs.readFileSync(file, 'utf8')));
    const e = parsed[name];
    if (!e) return undefined;
    if ('sshPrivateKeyFile' in e) return { sshPrivateKey: fs.readFileSync(e.sshPrivateKeyFile, 'utf8') };
    return { username: e.username, password: e.password };
  };
}
