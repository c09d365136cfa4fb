import { dirname, join } from 'node:path';

/**
 * PATH of an app that sets none: the system's, plus the directory of the node running Kiln (built-in buildpacks
 * and their apps run on it). Fixed here, never Kiln's own PATH: nothing of Kiln's environment reaches an app.
 */
export const DEFAULT_PATH = [...new Set([dirname(process.execPath), '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'])].join(':');

export interface InstanceEnvInput {
  base: Record<string, string>;
  /** The droplet directory as the process sees it (CF's /home/vcap inside a sandbox). */
  dropletDir: string;
  tmpDir: string;
  /** Defaults to the app directory, CF's HOME; a sandbox gives a private writable one instead. */
  home?: string;
  host: string;
  index: number;
  instanceGuid: string;
  memoryMb: number;
  /** Omitted for tasks: they get no port, like on Diego. */
  port?: number;
  /** CF_INSTANCE_CERT, CF_INSTANCE_KEY and CF_SYSTEM_CERT_PATH when the process has instance credentials. */
  credentials?: Record<string, string>;
  /** VCAP_SERVICES_FILE_PATH or SERVICE_BINDING_ROOT when service bindings are delivered as files. */
  bindings?: Record<string, string>;
}

/**
 * The container environment Diego gives a process, built from scratch: the platform variables and the app's
 * (spec) variables, nothing inherited from Kiln's process. The platform variables win over the spec's so an app
 * cannot be told a wrong PORT; buildpacks usually extend PATH through profile.d.
 */
export function instanceEnv(input: InstanceEnvInput): Record<string, string> {
  const home = join(input.dropletDir, 'app');
  const env: Record<string, string> = {
    ...input.base,
    PATH: input.base.PATH ?? DEFAULT_PATH,
    HOME: input.home ?? home,
    TMPDIR: input.tmpDir,
    DEPS_DIR: join(input.dropletDir, 'deps'),
    LANG: input.base.LANG ?? 'en_US.UTF-8',
    CF_INSTANCE_INDEX: String(input.index),
    INSTANCE_INDEX: String(input.index),
    CF_INSTANCE_GUID: input.instanceGuid,
    CF_INSTANCE_IP: input.host,
    CF_INSTANCE_INTERNAL_IP: input.host,
    MEMORY_LIMIT: `${input.memoryMb}m`,
    ...input.credentials,
    ...input.bindings,
  };
  if (input.port !== undefined) {
    const port = String(input.port);
    Object.assign(env, {
      PORT: port,
      CF_INSTANCE_PORT: port,
      CF_INSTANCE_ADDR: `${input.host}:${port}`,
      CF_INSTANCE_PORTS: JSON.stringify([{ external: input.port, internal: input.port }]),
    });
  }
  return env;
}
