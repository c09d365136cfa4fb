/**
 * The only boundary that touches processes or clusters. Controllers describe what should run (desired instances
 * and tasks); a Runtime makes it so and reports what is (observed state). Backends: runtime/local (child
 * processes on this machine) and runtime/kubernetes.
 */

export type HealthCheck =
  | { type: 'port'; timeoutSeconds?: number; invocationTimeoutSeconds?: number }
  | { type: 'process'; timeoutSeconds?: number }
  | { type: 'http'; endpoint: string; timeoutSeconds?: number; invocationTimeoutSeconds?: number; intervalSeconds?: number };

/**
 * Service bindings delivered as files (issue 9 §6, app features `file-based-vcap-services` → kind `vcap-services`,
 * `service-binding-k8s` → kind `k8s`): paths relative to the binding root (`vcap_services`, or
 * `<binding name>/<key>` in the servicebinding.io layout) and their contents. The runtime puts them where the
 * process sees them (Diego's /etc/cf-service-bindings), readable by that process only, and sets the variable that
 * names them (VCAP_SERVICES_FILE_PATH or SERVICE_BINDING_ROOT). Holds credentials in clear: never logged.
 */
export interface BindingFiles {
  kind: 'vcap-services' | 'k8s';
  files: Record<string, string>;
}

/** A staged droplet in Kiln's blobstore. */
export interface DropletRef {
  guid: string;
  blobKey: string;
}

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
  /** The droplet itself, for runtimes that deliver it elsewhere (the Kubernetes runtime's init container downloads it). */
  droplet?: DropletRef;
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
  /** Service bindings as files, when the app has a file-based binding feature (VCAP_SERVICES is then not in env). */
  bindingFiles?: BindingFiles;
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
  droplet?: DropletRef;
  command: string;
  env: Record<string, string>;
  memoryMb: number;
  diskMb: number;
  /** The app's space and org, named in the task's instance identity certificate. */
  spaceGuid?: string;
  organizationGuid?: string;
  /** As InstanceSpec.bindingFiles. */
  bindingFiles?: BindingFiles;
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

/**
 * A login for a container registry, resolved by Kiln for one image pull: the docker package's own username and
 * password, else the most specific registry credential (space, organization, foundation) for the image's
 * registry. Holds a clear-text secret: runtimes pass it to the registry (the Kubernetes runtime as an
 * imagePullSecret) and never log it.
 */
export interface RegistryAuth {
  registry: string;
  username: string;
  password: string;
  /** Where it came from, for logs: `package`, or the registry credential's scope and guid. */
  source: { kind: 'package' } | { kind: 'registry_credential'; scope: 'foundation' | 'organization' | 'space'; guid: string };
}

/** What a runtime needs to pull a container image (docker lifecycle). */
export interface ImagePull {
  image: string;
  auth?: RegistryAuth;
}

/** What the docker lifecycle's staging learns from an image: the command its `web` process runs. */
export interface ImageConfig {
  command: string;
}

/** A staging run the runtime executes (Kubernetes: a Job in the stack image running `kiln stage-job`). */
export interface StagingRun {
  buildGuid: string;
  appGuid: string;
  /** Blob the run downloads (package, buildpacks, settings) and blob it uploads the droplet to. */
  inputBlobKey: string;
  dropletBlobKey: string;
  memoryMb: number;
  diskMb: number;
  timeoutMs: number;
}

export interface Runtime {
  /**
   * Runs staging as a workload of the runtime; `onLine` gets every line the run prints. Resolves when it ended
   * (`reason` says how when it did not exit by itself). Without it Kiln stages on its own machine.
   */
  runStaging?(run: StagingRun, onLine: (text: string, stream: 'stdout' | 'stderr') => void): Promise<{ exitCode: number | null; reason?: string }>;
  /**
   * Pulls an image's configuration for docker-lifecycle staging. Only runtimes that run container images
   * implement it (not the local one); without it docker builds fail with a StagingError.
   */
  inspectImage?(pull: ImagePull): Promise<ImageConfig>;
  /**
   * Rewrites, in place, the binding files of the app's running instances and tasks that were started with files
   * of the same kind (a binding created or deleted, credentials rotated: no restart). Instances started without
   * files, or with the other kind, keep theirs until they are restarted. Runtimes without file delivery omit it,
   * and are then given VCAP_SERVICES in the env whatever the app's features say (services/binding-files.ts).
   */
  updateBindingFiles?(appGuid: string, files: BindingFiles): void;
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
