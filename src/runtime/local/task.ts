import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { BindingFiles, LogLine, TaskSpec, TaskStatus } from '../runtime.ts';
import { BindingFileSet } from './binding-files.ts';
import type { InstanceCredentialFiles } from './credentials.ts';
import { instanceEnv } from './environment.ts';
import type { MemoryCgroups } from './cgroup.ts';
import { prepareScratch, ProcessHandle, SANDBOX_DROPLET_DIR, type Jail } from './launch.ts';
import type { ProcessRecords } from './records.ts';
import type { Identity, Sandbox } from './sandbox.ts';
import { treeUsage } from './usage.ts';

export interface TaskContext {
  host: string;
  records: ProcessRecords;
  tmpRoot: string;
  sandbox: Sandbox;
  cgroups: MemoryCgroups | undefined;
  log: (line: LogLine) => void;
  changed: (id: string, appGuid: string) => void;
}

/** How often a sandboxed task without a memory cgroup has its memory measured. */
const TASK_MEMORY_POLL_MS = 500;

/** CC's failure_reason for a cancelled task. */
export const TASK_CANCELLED_REASON = 'task was cancelled';

/** One run of a task: like an instance without port or health check, and never restarted. */
export class TaskRun {
  private state: TaskStatus['state'] = 'RUNNING';
  private exitCode: number | null | undefined;
  private failureReason: string | undefined;
  private cancelled = false;
  private handle: ProcessHandle | undefined;
  finishedAt: number | undefined;
  readonly done: Promise<void>;
  private readonly tmpDir: string;
  private readonly source: string;
  private readonly bindings: BindingFileSet | undefined;

  constructor(
    readonly spec: TaskSpec,
    private readonly ctx: TaskContext,
    identity?: Identity,
    opts: { instanceGuid?: string; credentials?: InstanceCredentialFiles } = {},
  ) {
    const safeId = spec.id.replace(/[^A-Za-z0-9._-]/g, '_');
    this.tmpDir = join(ctx.tmpRoot, `task-${safeId}`);
    this.source = `APP/TASK/${spec.name ?? spec.id}`;
    mkdirSync(this.tmpDir, { recursive: true });
    let jail: Jail | undefined;
    if (ctx.sandbox.kind === 'bwrap') {
      prepareScratch(this.tmpDir, identity);
      const cgroup = spec.memoryMb > 0 ? ctx.cgroups?.create(`task-${safeId}`, spec.memoryMb * 1024 * 1024) : undefined;
      jail = {
        sandbox: ctx.sandbox,
        hostname: safeId.slice(0, 63),
        ...(identity ? { identity } : {}),
        scratchDir: this.tmpDir,
        ...(spec.diskMb > 0 ? { maxFileBytes: spec.diskMb * 1024 * 1024 } : {}),
        ...(cgroup ? { cgroup } : {}),
      };
    }
    const credentials = opts.credentials;
    if (credentials) credentials.install(this.tmpDir);
    const bindings = spec.bindingFiles ? new BindingFileSet(spec.bindingFiles, identity) : undefined;
    bindings?.install(this.tmpDir);
    this.bindings = bindings;
    if (jail) jail.binds = [...(credentials?.mounts() ?? []), ...(bindings?.mounts() ?? [])];
    const handle = new ProcessHandle({
      id: spec.id,
      kind: 'task',
      dropletDir: spec.dropletDir,
      command: spec.command,
      env: instanceEnv({
        base: spec.env,
        dropletDir: jail ? SANDBOX_DROPLET_DIR : spec.dropletDir,
        tmpDir: jail ? `${SANDBOX_DROPLET_DIR}/tmp` : this.tmpDir,
        ...(jail ? { home: SANDBOX_DROPLET_DIR } : {}),
        host: ctx.host,
        index: 0,
        instanceGuid: opts.instanceGuid ?? randomUUID(),
        memoryMb: spec.memoryMb,
        ...(credentials ? { credentials: credentials.env(jail !== undefined) } : {}),
        ...(bindings ? { bindings: bindings.env(jail !== undefined) } : {}),
      }),
      records: ctx.records,
      ...(jail ? { jail } : {}),
      onLine: (stream, text) =>
        ctx.log({ appGuid: spec.appGuid, sourceType: `${this.source}/0`, instance: '0', stream, text, timestamp: Date.now() }),
    });
    this.handle = handle;
    // Without a kernel limit, the task's process tree is measured like an instance's (only in a sandbox: an
    // unsandboxed task keeps the behaviour it always had).
    let overMemory = false;
    const watch =
      jail && !jail.cgroup && spec.memoryMb > 0 && handle.pid !== undefined
        ? setInterval(() => {
            if (handle.hasExited || handle.pid === undefined) return;
            if (treeUsage(handle.pid).memBytes > spec.memoryMb * 1024 * 1024) {
              overMemory = true;
              handle.kill();
            }
          }, TASK_MEMORY_POLL_MS)
        : undefined;
    watch?.unref();
    this.done = handle.exited.then(async (info) => {
      if (watch) clearInterval(watch);
      credentials?.stop();
      await handle.gone;
      jail?.cgroup?.remove();
      this.exitCode = info.code;
      if (this.cancelled) {
        this.state = 'FAILED';
        this.failureReason = TASK_CANCELLED_REASON;
      } else if (info.status === 0 && !info.error) {
        this.state = 'SUCCEEDED';
      } else {
        this.state = 'FAILED';
        this.failureReason = info.error
          ? `${this.source}: failed to start: ${info.error}`
          : `${this.source}: Exited with status ${info.status}${info.oomKilled || overMemory ? ' (out of memory)' : ''}`;
      }
      this.finishedAt = Date.now();
      this.handle = undefined;
      rmSync(this.tmpDir, { recursive: true, force: true });
      ctx.changed(spec.id, spec.appGuid);
    });
  }

  status(): TaskStatus {
    return {
      id: this.spec.id,
      state: this.state,
      ...(this.exitCode !== undefined ? { exitCode: this.exitCode } : {}),
      ...(this.failureReason !== undefined ? { failureReason: this.failureReason } : {}),
    };
  }

  /** Rewrites the task's binding files in place while it runs (see BindingFileSet.update). */
  updateBindingFiles(files: BindingFiles): void {
    if (this.handle && !this.handle.hasExited) this.bindings?.update(files);
  }

  /** SIGTERM, then SIGKILL after the grace period; resolves once the task is FAILED. Idempotent. */
  async cancel(graceMs: number): Promise<void> {
    if (this.handle && !this.handle.hasExited && !this.cancelled) {
      this.cancelled = true;
      await this.handle.terminate(graceMs);
    }
    await this.done;
  }
}
