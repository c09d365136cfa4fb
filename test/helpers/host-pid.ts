import { readdirSync, readFileSync } from 'node:fs';

/**
 * The host pid of a sandboxed app process that reported `innerPid` (its pid inside its own PID namespace), picked
 * out by strings its environment holds (an app guid, CF_INSTANCE_INDEX=1). Without a sandbox the pids are the
 * same. Undefined when no such process lives.
 */
export function hostPidOf(innerPid: number, environNeedles: string[]): number | undefined {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const nspid = /^NSpid:\s+(.+)$/m.exec(readFileSync(`/proc/${name}/status`, 'utf8'))?.[1]?.trim().split(/\s+/);
      if (!nspid || Number(nspid[nspid.length - 1]) !== innerPid) continue;
      const environ = readFileSync(`/proc/${name}/environ`, 'utf8').split('\0');
      if (environNeedles.every((needle) => environ.some((v) => v.includes(needle)))) return Number(name);
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return undefined;
}

/**
 * Host pids of live processes whose argv is exactly `argv` and whose environment holds every needle — how a test
 * finds a sandboxed app process it cannot make write a pid file to the host.
 */
export function hostPidsByCommand(argv: string[], environNeedles: string[]): number[] {
  const want = `${argv.join('\0')}\0`;
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8') !== want) continue;
      const environ = readFileSync(`/proc/${name}/environ`, 'utf8');
      if (environNeedles.every((needle) => environ.includes(needle))) found.push(Number(name));
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return found;
}
