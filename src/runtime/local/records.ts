import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HealthCheck } from '../runtime.ts';
import { liveGroupMembers, readProcStat, isLive } from './proc.ts';

/**
 * Crash safety for the local runtime. Every process group Kiln starts gets a small JSON record under
 * `<dataDir>/runtime/procs/`, written before the group runs anything (its leader waits at a gate until then, see
 * ENTRY in launch.ts), and removed when the group is gone: no process of Kiln's ever runs without a record. If
 * Kiln dies without cleaning up (crash, SIGKILL, power loss of the controller only), the next LocalRuntime on the
 * same data dir finds the records before doing anything else. An instance whose record carries its slot
 * (`instance`) and that runs without sidecars is adopted: the new runtime supervises the same process group (same
 * pid, port and instance guid), so a restart of Kiln restarts no app (DESIGN.md, Runtimes). Everything else —
 * tasks (whose exit status is their result), sidecar groups, records of an older format — is killed, and the
 * controllers re-create it from desired state.
 * An adopted process is not Kiln's child: its exit is noticed by polling /proc and its exit status is unknown. Its
 * stdout and stderr are FIFOs (`logs`), which the new runtime reads again; pipes would have died with the old Kiln.
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
  /** An instance's slot and incarnation: what a restarted Kiln needs to adopt the group (see AdoptableInstance). */
  instance?: AdoptableInstance;
  /** The FIFOs the group logs to, when it must outlive Kiln (launch.ts LogFifoStock); else it logs to pipes. */
  logs?: LogFifos;
}

/** Named pipes an instance's stdout and stderr go to, which a restarted Kiln opens again after adopting it. */
export interface LogFifos {
  stdout: string;
  stderr: string;
}

export function removeLogFifos(fifos: LogFifos): void {
  for (const path of [fifos.stdout, fifos.stderr]) {
    try {
      rmSync(path, { force: true });
    } catch {
      // Its directory is gone: so is the FIFO.
    }
  }
}

/**
 * What a restarted runtime needs to supervise an instance it did not start: the slot (the InstanceSpec fields
 * that are not secrets: the env stays in memory only), the incarnation's port, instance guid and cgroup, and how
 * far it got (RUNNING or still being health-checked).
 */
export interface AdoptableInstance {
  appGuid: string;
  processGuid: string;
  processType: string;
  version: string;
  index: number;
  dropletDir: string;
  droplet?: { guid: string; blobKey: string };
  memoryMb: number;
  diskMb: number;
  healthCheck: HealthCheck;
  spaceGuid?: string;
  organizationGuid?: string;
  port: number;
  instanceGuid: string;
  /** The app's uid/gid inside the sandbox, when it has its own (owner of the files a claim rewrites). */
  identity?: { uid: number; gid: number };
  /** Name of the incarnation's memory cgroup, when it has one. */
  cgroup?: string;
  /** When the incarnation passed its health check; unset while it was STARTING. */
  runningSince?: number;
  crashCount: number;
}

/** Records of a previous run, by what the new runtime does with them. */
export interface Leftovers {
  /** Live instance groups to adopt. */
  adoptable: ProcessRecord[];
  /** Live groups that were killed. */
  reaped: ProcessRecord[];
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
    try {
      rmSync(this.file(pid), { force: true });
    } catch {
      // The directory is gone or broken: a stale record only costs the next start a look at a dead pid.
    }
  }

  /** Kills the groups of a previous run that are still alive; returns the records that matched a live group. */
  reapLeftovers(): ProcessRecord[] {
    return this.recover(() => false).reaped;
  }

  /**
   * Sorts the records of a previous run: live groups that `adopt` accepts keep their record (the runtime now
   * supervises them), other live groups are killed, and records of dead groups are removed.
   */
  recover(adopt: (record: ProcessRecord) => boolean): Leftovers {
    const killed: ProcessRecord[] = [];
    const adoptable: ProcessRecord[] = [];
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
        if (adopt(record)) {
          adoptable.push(record);
          continue;
        }
        try {
          process.kill(-record.pgid, 'SIGKILL');
          killed.push(record);
        } catch {
          // ESRCH: the group died between the check and the kill.
        }
      }
      rmSync(path, { force: true });
    }
    return { adoptable, reaped: killed };
  }

  /** Kills a group recover() returned as adoptable that the runtime decided not to keep, and drops its record. */
  kill(record: ProcessRecord): void {
    try {
      process.kill(-record.pgid, 'SIGKILL');
    } catch {
      // ESRCH: already gone.
    }
    this.remove(record.pid);
    if (record.logs) removeLogFifos(record.logs);
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
