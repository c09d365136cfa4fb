import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { liveGroupMembers, readProcStat, isLive } from './proc.ts';

/**
 * Crash safety for the local runtime. Every process group Kiln starts gets a small JSON record under
 * `<dataDir>/runtime/procs/`; it is removed when the group is gone. If Kiln dies without cleaning up (crash,
 * SIGKILL, power loss of the controller only), the next LocalRuntime on the same data dir finds the records and kills
 * the leftover groups before doing anything else. The controllers then re-create the instances from desired state.
 *
 * Why kill instead of adopt: an adopted process would be a non-child — no exit status, no stdout/stderr for the
 * log stream, no reliable crash detection — so it would be a second-class instance. Restarting is deterministic and
 * cheap for twelve-factor apps, and it guarantees no orphans and no duplicates.
 *
 * A record only matches when the pid still exists with the same /proc start time, so a pid reused by an unrelated
 * process is never killed. If the leader is gone but members of its group survive (the group id cannot be taken
 * by a new process while the group exists), those members are killed too.
 */

export interface ProcessRecord {
  /** Instance or task id this process belonged to. */
  id: string;
  kind: 'instance' | 'task';
  pid: number;
  pgid: number;
  /** /proc/<pid>/stat start time in clock ticks after boot. */
  startTicks: number;
  createdAt: number;
}

export class ProcessRecords {
  readonly dir: string;

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'runtime', 'procs');
    mkdirSync(this.dir, { recursive: true });
  }

  write(record: ProcessRecord): void {
    const file = this.file(record.pid);
    // Write-then-rename so a crash mid-write never leaves a half record that would be ignored.
    writeFileSync(`${file}.tmp`, JSON.stringify(record));
    renameSync(`${file}.tmp`, file);
  }

  remove(pid: number): void {
    rmSync(this.file(pid), { force: true });
  }

  /** Kills the groups of a previous run that are still alive; returns the records that matched a live group. */
  reapLeftovers(): ProcessRecord[] {
    const killed: ProcessRecord[] = [];
    for (const name of readdirSync(this.dir)) {
      const path = join(this.dir, name);
      if (!name.endsWith('.json')) {
        rmSync(path, { force: true });
        continue;
      }
      let record: ProcessRecord | undefined;
      try {
        record = JSON.parse(readFileSync(path, 'utf8')) as ProcessRecord;
      } catch {
        record = undefined;
      }
      if (record && typeof record.pid === 'number' && typeof record.pgid === 'number' && leftoverAlive(record)) {
        try {
          process.kill(-record.pgid, 'SIGKILL');
          killed.push(record);
        } catch {
          // ESRCH: the group died between the check and the kill.
        }
      }
      rmSync(path, { force: true });
    }
    return killed;
  }

  private file(pid: number): string {
    return join(this.dir, `${pid}.json`);
  }
}

function leftoverAlive(record: ProcessRecord): boolean {
  const leader = readProcStat(record.pid);
  // Same pid, different start time: the pid was reused by someone else's process.
  if (leader !== undefined && leader.startTicks !== record.startTicks) return false;
  // The leader may be alive, a zombie, or gone while members of its group live on.
  return isLive(leader) || liveGroupMembers(record.pgid).length > 0;
}
