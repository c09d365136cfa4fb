import type {
  BindingFiles,
  InstanceSpec,
  InstanceState,
  InstanceStats,
  InstanceStatus,
  LogLine,
  Runtime,
  TaskSpec,
  TaskStatus,
} from '../../src/runtime/runtime.ts';

type ChangeEvent = Parameters<Parameters<Runtime['onChange']>[0]>[0];

/**
 * The Runtime interface in memory, for reconciler tests: nothing runs, and the test decides what happens to
 * instances and tasks (`run`, `crash`, `finishTask`…). Every state change is reported through `onChange`, as
 * the local runtime reports its processes', so the controllers are woken the same way.
 */
export class FakeRuntime implements Runtime {
  readonly instances = new Map<string, { spec: InstanceSpec; status: InstanceStatus }>();
  readonly tasks = new Map<string, { spec: TaskSpec; status: TaskStatus }>();
  /** Every instance id ever stopped, in order. */
  readonly stopped: string[] = [];
  /** When set, runTask rejects with this message (the runtime refused the task). */
  refuseTasks: string | undefined;
  /** Every updateBindingFiles call, in order. */
  readonly bindingFileUpdates: Array<{ appGuid: string; files: BindingFiles }> = [];
  private readonly listeners = new Set<(event: ChangeEvent) => void>();
  private nextPort = 40_000;

  updateBindingFiles(appGuid: string, files: BindingFiles): void {
    this.bindingFileUpdates.push({ appGuid, files });
  }

  async ensureInstance(spec: InstanceSpec): Promise<void> {
    if (this.instances.has(spec.id)) return;
    this.instances.set(spec.id, {
      spec,
      status: {
        id: spec.id,
        appGuid: spec.appGuid,
        processGuid: spec.processGuid,
        version: spec.version,
        index: spec.index,
        state: 'STARTING',
        host: '127.0.0.1',
        port: this.nextPort++,
        pid: undefined,
        since: Date.now(),
        crashCount: 0,
      },
    });
    this.changed('instance', spec.id, spec.appGuid);
  }

  async stopInstance(id: string): Promise<void> {
    const i = this.instances.get(id);
    if (!i) return;
    this.instances.delete(id);
    this.stopped.push(id);
    this.changed('instance', id, i.spec.appGuid);
  }

  async restartInstance(id: string): Promise<void> {
    this.setState(id, 'STARTING');
  }

  listInstances(filter: { processGuid?: string; appGuid?: string } = {}): InstanceStatus[] {
    return [...this.instances.values()]
      .map((i) => ({ ...i.status }))
      .filter((s) => (!filter.processGuid || s.processGuid === filter.processGuid) && (!filter.appGuid || s.appGuid === filter.appGuid));
  }

  async stats(id: string): Promise<InstanceStats | undefined> {
    return this.instances.has(id) ? { cpu: 0, memBytes: 0, diskBytes: 0, uptimeSeconds: 1 } : undefined;
  }

  async runTask(spec: TaskSpec): Promise<void> {
    if (this.refuseTasks) throw new Error(this.refuseTasks);
    if (this.tasks.has(spec.id)) return;
    this.tasks.set(spec.id, { spec, status: { id: spec.id, state: 'RUNNING' } });
    this.changed('task', spec.id, spec.appGuid);
  }

  async cancelTask(id: string): Promise<void> {
    const t = this.tasks.get(id);
    if (!t || t.status.state !== 'RUNNING') return;
    t.status = { id, state: 'FAILED', exitCode: null, failureReason: 'task was cancelled' };
    this.changed('task', id, t.spec.appGuid);
  }

  taskStatus(id: string): TaskStatus | undefined {
    const t = this.tasks.get(id);
    return t ? { ...t.status } : undefined;
  }

  onChange(listener: (event: ChangeEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onLog(_listener: (line: LogLine) => void): () => void {
    return () => undefined;
  }

  async shutdown(): Promise<void> {
    this.instances.clear();
    this.tasks.clear();
  }

  // ---- what a test does to the "world"

  /** Sets an instance's state (RUNNING once its health check passes, DOWN…), as the runtime would report it. */
  setState(id: string, state: InstanceState): void {
    const i = this.instances.get(id);
    if (!i) throw new Error(`no instance ${id}`);
    i.status = { ...i.status, state, since: Date.now() };
    this.changed('instance', id, i.spec.appGuid);
  }

  /** Marks every STARTING instance (of one process, or all) RUNNING. */
  runAll(processGuid?: string): void {
    for (const s of this.listInstances(processGuid ? { processGuid } : {})) if (s.state === 'STARTING') this.setState(s.id, 'RUNNING');
  }

  /** Crashes an instance with an exit reason; it stays CRASHED until the test restarts or runs it. */
  crash(id: string, reason = 'APP/PROC/WEB: Exited with status 1'): void {
    const i = this.instances.get(id);
    if (!i) throw new Error(`no instance ${id}`);
    i.status = { ...i.status, state: 'CRASHED', crashCount: i.status.crashCount + 1, lastExit: { code: 1, signal: null, at: Date.now(), reason } };
    this.changed('instance', id, i.spec.appGuid);
  }

  /** Ends a running task: exit code 0 is SUCCEEDED, anything else FAILED with the runtime's reason. */
  finishTask(id: string, exitCode = 0): void {
    const t = this.tasks.get(id);
    if (!t) throw new Error(`no task ${id}`);
    t.status = exitCode === 0 ? { id, state: 'SUCCEEDED', exitCode } : { id, state: 'FAILED', exitCode, failureReason: `APP/TASK/${t.spec.name ?? id}: Exited with status ${exitCode}` };
    this.changed('task', id, t.spec.appGuid);
  }

  /** Forgets a task, as a runtime restarted since it ran would. */
  forgetTask(id: string): void {
    this.tasks.delete(id);
  }

  private changed(kind: 'instance' | 'task', id: string, appGuid: string): void {
    for (const l of this.listeners) l({ kind, id, appGuid });
  }
}
