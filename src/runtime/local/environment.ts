import { join } from 'node:path';

export interface InstanceEnvInput {
  base: Record<string, string>;
  dropletDir: string;
  tmpDir: string;
  host: string;
  index: number;
  instanceGuid: string;
  memoryMb: number;
  /** Omitted for tasks: they get no port, like on Diego. */
  port?: number;
}

/**
 * The container environment Diego gives a process, adapted to a host process. The platform variables win over the
 * spec's so an app cannot be told a wrong PORT; PATH is inherited unless the spec sets one (buildpacks usually
 * extend it through profile.d instead).
 */
export function instanceEnv(input: InstanceEnvInput): Record<string, string> {
  const home = join(input.dropletDir, 'app');
  const env: Record<string, string> = {
    ...input.base,
    PATH: input.base.PATH ?? process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: home,
    TMPDIR: input.tmpDir,
    DEPS_DIR: join(input.dropletDir, 'deps'),
    LANG: input.base.LANG ?? 'en_US.UTF-8',
    CF_INSTANCE_INDEX: String(input.index),
    INSTANCE_INDEX: String(input.index),
    CF_INSTANCE_GUID: input.instanceGuid,
    CF_INSTANCE_IP: input.host,
    CF_INSTANCE_INTERNAL_IP: input.host,
    MEMORY_LIMIT: `${input.memoryMb}m`,
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
