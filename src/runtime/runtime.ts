/**
 * The only boundary that touches processes or clusters. Controllers describe what should run (desired instances
 * and tasks); a Runtime makes it so and reports what is (observed state). Backends: runtime/local (child
 * processes on this machine) and runtime/kubernetes.
 */

export type HealthCheck =
  | { type: 'port'; timeoutSeconds?: number; invocationTimeoutSeconds?: number }
  | { type: 'process'; timeoutSeconds?: number }
  | { type: 'http'; endpoint: string; timeoutSeconds?: number; invocationTimeoutSeconds?: number; intervalSeconds?: number };

/** One desired instance of a process (CF: an LRP instance). Identified by processGuid + index + version. */
export interface InstanceSpec {
  /** Stable id of this instance slot: `${processGuid}:${version}:${index}`. */
  id: string;
  appGuid: string;
  processGuid: string;
  processType: string;
  /** Changes when the instance must be replaced (new droplet, command, env…); old versions are drained. */
  version: string;
  index: number;
  /** Directory of the extracted droplet (contains `app/` and the start command's files). */
  dropletDir: string;
  command: string;
  env: Record<string, string>;
  memoryMb: number;
  diskMb: number;
  healthCheck: HealthCheck;
  /** Sidecars run beside the main command in the same environment. */
  sidecars?: Array<{ name: string; command: string }>;
  /** The app's space and org, named in the instance identity certificate (CF_INSTANCE_CERT). */
  spaceGuid?: string;
  organizationGuid?: string;
}

/** The id of an instance slot; the format is the runtime's contract, so it is built and read only here. */
export const instanceId = (processGuid: string, version: string, index: number): string => `${processGuid}:${version}:${index}`;

/** The process an instance id belongs to (process guids contain no colon). */
export const processGuidOfInstance = (id: string): string => id.slice(0, id.indexOf(':') < 0 ? id.length : id.indexOf(':'));

/** STOPPING: being stopped or replaced (SIGTERM sent, grace period running); never routable. */
export type InstanceState = 'STARTING' | 'RUNNING' | 'CRASHED' | 'STOPPING' | 'DOWN';

export interface InstanceStatus {
  id: string;
  appGuid: string;
  processGuid: string;
  version: string;
  index: number;
  state: InstanceState;
  /** Where the router may send traffic (only meaningful when RUNNING). */
  host: string;
  port: number | undefined;
  pid: number | undefined;
  /** Epoch ms the current incarnation started. */
  since: number;
  crashCount: number;
  lastExit?: { code: number | null; signal: string | null; at: number; reason: string };
}

export interface InstanceStats {
  cpu: number;
  memBytes: number;
  diskBytes: number;
  uptimeSeconds: number;
}

export interface TaskSpec {
  id: string;
  /** CF task name; log source type is `APP/TASK/<name>/0`. Defaults to the id. */
  name?: string;
  appGuid: string;
  dropletDir: string;
  command: string;
  env: Record<string, string>;
  memoryMb: number;
  diskMb: number;
  /** The app's space and org, named in the task's instance identity certificate. */
  spaceGuid?: string;
  organizationGuid?: string;
}

export type TaskState = 'RUNNING' | 'SUCCEEDED' | 'FAILED';

export interface TaskStatus {
  id: string;
  state: TaskState;
  exitCode?: number | null;
  failureReason?: string;
}

/** A line of output from an instance or task, for the app's log buffer. */
export interface LogLine {
  appGuid: string;
  /** `APP/PROC/WEB/0`, `APP/TASK/<name>/0`, `CELL/0` (index included; log-cache's source_type tag is the part before it). */
  sourceType: string;
  /** Instance index as a string (log-cache's instance_id). */
  instance: string;
  stream: 'stdout' | 'stderr';
  text: string;
  timestamp: number;
}

export interface Runtime {
  /** Makes the instance run (idempotent: an instance already running with this id is left alone). */
  ensureInstance(spec: InstanceSpec): Promise<void>;
  /** Stops an instance gracefully: SIGTERM, then SIGKILL after the grace period. Idempotent. */
  stopInstance(id: string, opts?: { graceMs?: number }): Promise<void>;
  /** Kills the current incarnation (as `cf restart-app-instance` / a crash); the runtime restarts it with backoff. */
  restartInstance(id: string): Promise<void>;
  listInstances(filter?: { processGuid?: string; appGuid?: string }): InstanceStatus[];
  stats(id: string): Promise<InstanceStats | undefined>;
  runTask(spec: TaskSpec): Promise<void>;
  cancelTask(id: string): Promise<void>;
  taskStatus(id: string): TaskStatus | undefined;
  /** Observed-state changes (instance became RUNNING/CRASHED, task finished) wake the controllers. */
  onChange(listener: (event: { kind: 'instance' | 'task'; id: string; appGuid: string }) => void): () => void;
  onLog(listener: (line: LogLine) => void): () => void;
  /** Stops everything this runtime started (on shutdown). */
  shutdown(): Promise<void>;
}
