import fs from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { ExtractLimits } from './archive.ts';
import { extractTarGz } from './tarball.ts';

/**
 * Extracts a droplet tarball for the runtime into `dest` (absent or empty). Droplets may be uploaded by
 * clients (`POST /v3/droplets/:guid/upload`), so the same escape and size checks apply as for app zips.
 */
export async function extractDroplet(tgz: string, dest: string, limits: Partial<ExtractLimits> = {}): Promise<void> {
  await extractTarGz(tgz, dest, { kind: 'droplet', limits });
  await fs.mkdir(path.join(dest, 'app'), { recursive: true });
  await fs.mkdir(path.join(dest, 'tmp'), { recursive: true });
}

export interface StagingInfo {
  detectedBuildpack: string;
  startCommand: string;
}

export async function readStagingInfo(dropletRoot: string): Promise<StagingInfo | null> {
  const text = await fs.readFile(path.join(dropletRoot, 'staging_info.yml'), 'utf8').catch(() => null);
  if (text === null) return null;
  try {
    const doc = parseYaml(text) as { detected_buildpack?: unknown; start_command?: unknown } | null;
    return {
      detectedBuildpack: typeof doc?.detected_buildpack === 'string' ? doc.detected_buildpack : '',
      startCommand: typeof doc?.start_command === 'string' ? doc.start_command : '',
    };
  } catch {
    return null;
  }
}

export interface LaunchSpec {
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
}

/**
 * Sources profile scripts the way CF's launcher does — deps/<i>/profile.d, then profile.d, then the app's
 * .profile.d and .profile — and then execs the command. `bash -c` execs a single simple command directly,
 * so the app itself ends up as the child's process; still start it detached and signal its process group.
 */
const LAUNCHER = [
  'cd "$HOME" || exit 1',
  'i=0',
  'while [ -d "$DEPS_DIR/$i" ]; do',
  '  for s in "$DEPS_DIR/$i"/profile.d/*.sh; do [ -f "$s" ] && . "$s"; done',
  '  i=$((i + 1))',
  'done',
  'for s in "$KILN_DROPLET_ROOT"/profile.d/*.sh; do [ -f "$s" ] && . "$s"; done',
  'for s in "$HOME"/.profile.d/*.sh; do [ -f "$s" ] && . "$s"; done',
  '[ -f "$HOME/.profile" ] && . "$HOME/.profile"',
  'if command -v bash >/dev/null 2>&1; then exec bash -c "$1"; else exec /bin/sh -c "$1"; fi',
].join('\n');

/**
 * How to start `command` from an extracted droplet: HOME is the app dir (as in CF, where it is
 * /home/vcap/app), DEPS_DIR the deps dir. `env` (PORT, VCAP_*, the app's variables ...) is applied on top.
 */
export function launchSpec(dropletRoot: string, command: string, env: Record<string, string> = {}): LaunchSpec {
  const root = path.resolve(dropletRoot);
  const base: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    LANG: process.env.LANG ?? 'C.UTF-8',
    HOME: path.join(root, 'app'),
    DEPS_DIR: path.join(root, 'deps'),
    TMPDIR: path.join(root, 'tmp'),
    KILN_DROPLET_ROOT: root,
  };
  return {
    file: '/bin/sh',
    args: ['-c', LAUNCHER, 'kiln-launcher', command],
    cwd: path.join(root, 'app'),
    env: { ...base, ...env, HOME: base.HOME!, DEPS_DIR: base.DEPS_DIR!, KILN_DROPLET_ROOT: root },
  };
}
