import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';

/**
 * The `kiln` CLI's saved login and target, in ~/.kiln/config.json (like the cf CLI's ~/.cf/config.json).
 * It holds tokens, so the folder is 0700 and the file 0600, rewritten atomically.
 */

const Named = z.object({ guid: z.string(), name: z.string() });

export const CliConfigSchema = z.object({
  api: z.string().optional(),
  /** Where tokens come from (`links.login` of the API root). */
  loginUrl: z.string().optional(),
  logCacheUrl: z.string().nullable().optional(),
  accessToken: z.string().optional(),
  refreshToken: z.string().optional(),
  username: z.string().optional(),
  org: Named.optional(),
  space: Named.optional(),
});
export type CliConfig = z.infer<typeof CliConfigSchema>;
export type NamedRef = z.infer<typeof Named>;

/** `$HOME/.kiln` (HOME is honoured, so tests and scripts can keep their own). */
export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.HOME || os.homedir(), '.kiln');
}

export const configFile = (env: NodeJS.ProcessEnv = process.env) => path.join(configDir(env), 'config.json');

export class ConfigFileError extends Error {}

export async function readCliConfig(env: NodeJS.ProcessEnv = process.env): Promise<CliConfig> {
  const file = configFile(env);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new ConfigFileError(`${file} is not valid JSON. Fix it or delete it and run 'kiln login' again.`);
  }
  const parsed = CliConfigSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigFileError(`${file} is not a kiln CLI config (${parsed.error.issues[0]?.message}). Delete it and run 'kiln login' again.`);
  return parsed.data;
}

export async function writeCliConfig(config: CliConfig, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const dir = configDir(env);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const file = configFile(env);
  const tmp = `${file}.${process.pid}.tmp`;
  await fs.writeFile(tmp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  // writeFile's mode only applies to new files; a leftover temp file keeps its old mode otherwise.
  await fs.chmod(tmp, 0o600);
  await fs.rename(tmp, file);
}
