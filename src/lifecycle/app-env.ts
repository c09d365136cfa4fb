import type { Kysely } from 'kysely';
import { parseJsonObject } from '../domain/apps.ts';
import { parseVariables, type EnvGroupName } from '../domain/environment-variable-groups.ts';
import type { Database, Row } from '../store/schema.ts';
import type { SecretBox } from '../store/secret-box.ts';
import { openEnvVars } from '../store/env-vars.ts';

/** File-descriptor limit every instance gets (upstream's default `instance_file_descriptor_limit`). */
export const FDS_LIMIT = 16384;

/** The URIs of every route mapped to an app (`host.domain/path`, or `domain:port` for TCP), sorted. */
export async function appUris(db: Kysely<Database>, appGuid: string): Promise<string[]> {
  const rows = await db
    .selectFrom('route_destinations')
    .innerJoin('routes', 'routes.guid', 'route_destinations.route_guid')
    .innerJoin('domains', 'domains.guid', 'routes.domain_guid')
    .select(['routes.host', 'routes.path', 'routes.port', 'routes.protocol', 'domains.name as domain'])
    .where('route_destinations.app_guid', '=', appGuid)
    .execute();
  const uris = rows.map((r) => {
    if (r.protocol === 'tcp') return `${r.domain}:${r.port}`;
    return `${r.host ? `${r.host}.` : ''}${r.domain}${r.path}`;
  });
  return [...new Set(uris)].sort();
}

export interface AppEnvContext {
  app: Pick<Row<'apps'>, 'guid' | 'name' | 'environment_variables'>;
  space: Pick<Row<'spaces'>, 'guid' | 'name'>;
  org: Pick<Row<'organizations'>, 'guid' | 'name'>;
  /** Absolute URL of the API, e.g. `https://api.example.org`. */
  cfApi: string;
}

/** `VCAP_APPLICATION` for the app as a whole (CONVENTIONS.md §20.1). */
export async function vcapApplication(db: Kysely<Database>, e: AppEnvContext): Promise<Record<string, unknown>> {
  const uris = await appUris(db, e.app.guid);
  return {
    cf_api: e.cfApi,
    limits: { fds: FDS_LIMIT },
    application_name: e.app.name,
    application_uris: uris,
    name: e.app.name,
    space_name: e.space.name,
    space_id: e.space.guid,
    organization_id: e.org.guid,
    organization_name: e.org.name,
    uris,
    users: null,
    application_id: e.app.guid,
  };
}

/**
 * `VCAP_APPLICATION` as one running instance of a process sees it: the app's, plus the process id and type,
 * its memory and disk limits and its version.
 */
export async function runtimeVcapApplication(
  db: Kysely<Database>,
  e: AppEnvContext,
  process: Pick<Row<'processes'>, 'guid' | 'type' | 'memory_in_mb' | 'disk_in_mb' | 'version'>,
): Promise<Record<string, unknown>> {
  const base = await vcapApplication(db, e);
  return {
    ...base,
    limits: { fds: FDS_LIMIT, mem: process.memory_in_mb, disk: process.disk_in_mb },
    process_id: process.guid,
    process_type: process.type,
    version: process.version,
    application_version: process.version,
  };
}

/**
 * The plain environment variables an instance runs with, lowest precedence first: the running group, then the
 * app's own variables (the app wins, as in Cloud Foundry). System variables (PORT, VCAP_*, CF_INSTANCE_*) are
 * added by the runtime.
 */
export async function runningEnvironment(db: Kysely<Database>, app: Pick<Row<'apps'>, 'environment_variables'>, secrets: SecretBox): Promise<Record<string, string>> {
  return { ...(await environmentVariableGroupVars(db, 'running')), ...openEnvVars(secrets, app.environment_variables) };
}

/** The staging counterpart of runningEnvironment. */
export async function stagingEnvironment(db: Kysely<Database>, app: Pick<Row<'apps'>, 'environment_variables'>, secrets: SecretBox): Promise<Record<string, string>> {
  return { ...(await environmentVariableGroupVars(db, 'staging')), ...openEnvVars(secrets, app.environment_variables) };
}

/**
 * `VCAP_SERVICES` as Cloud Controller builds it (system_env_presenter.rb): `{ <label>: [entry…] }` keyed by the
 * offering's name, or `user-provided`; one entry per app binding whose create has succeeded. User-provided entries
 * carry the instance's current credentials and drain (an update of the instance reaches its bindings) and no
 * `provider`/`plan`; managed ones merge the offering's and the instance's tags. Always an object, `{}` without
 * bindings. Read when an instance starts: a new binding reaches a running app on its next (re)start, as in CF.
 */
export async function vcapServices(db: Kysely<Database>, appGuid: string, secrets: SecretBox): Promise<Record<string, unknown[]>> {
  const rows = await db
    .selectFrom('service_credential_bindings as b')
    .innerJoin('service_instances as i', 'i.guid', 'b.service_instance_guid')
    .leftJoin('service_plans as p', 'p.guid', 'i.service_plan_guid')
    .leftJoin('service_offerings as o', 'o.guid', 'p.service_offering_guid')
    .select([
      'b.guid as binding_guid',
      'b.name as binding_name',
      'b.credentials_enc as binding_credentials',
      'b.syslog_drain_url as binding_drain',
      'b.volume_mounts',
      'b.last_operation_type',
      'b.last_operation_state',
      'i.guid as instance_guid',
      'i.name as instance_name',
      'i.type as instance_type',
      'i.tags as instance_tags',
      'i.credentials_enc as instance_credentials',
      'i.syslog_drain_url as instance_drain',
      'p.name as plan_name',
      'o.name as offering_name',
      'o.tags as offering_tags',
    ])
    .where('b.app_guid', '=', appGuid)
    .where('b.type', '=', 'app')
    .orderBy('b.id')
    .execute();
  const out: Record<string, unknown[]> = {};
  for (const r of rows) {
    if (r.last_operation_type === 'create' && r.last_operation_state !== 'succeeded') continue;
    const name = r.binding_name ?? r.instance_name;
    const instanceTags = JSON.parse(r.instance_tags) as string[];
    let entry: Record<string, unknown>;
    if (r.instance_type === 'user-provided') {
      entry = {
        label: 'user-provided',
        name,
        tags: instanceTags,
        instance_guid: r.instance_guid,
        instance_name: r.instance_name,
        binding_guid: r.binding_guid,
        binding_name: r.binding_name,
        credentials: secrets.openJson(r.instance_credentials) ?? {},
        syslog_drain_url: r.instance_drain,
        volume_mounts: [],
      };
    } else {
      const mounts = (JSON.parse(r.volume_mounts) as Array<Record<string, unknown>>).map((m) => ({ container_dir: m.container_dir, mode: m.mode, device_type: m.device_type }));
      entry = {
        label: r.offering_name,
        provider: null,
        plan: r.plan_name,
        name,
        tags: [...new Set([...(JSON.parse(r.offering_tags ?? '[]') as string[]), ...instanceTags])],
        instance_guid: r.instance_guid,
        instance_name: r.instance_name,
        binding_guid: r.binding_guid,
        binding_name: r.binding_name,
        credentials: secrets.openJson(r.binding_credentials) ?? {},
        syslog_drain_url: r.binding_drain,
        volume_mounts: mounts,
      };
    }
    const label = entry.label as string;
    (out[label] ??= []).push(entry);
  }
  return out;
}

export interface AppEnvironment {
  environment_variables: Record<string, string>;
  staging_env_json: Record<string, string>;
  running_env_json: Record<string, string>;
  system_env_json: Record<string, unknown>;
  application_env_json: Record<string, unknown>;
}

/** The body of `GET /v3/apps/:guid/env`; `redactSystem` hides VCAP_SERVICES from callers without secret access. */
export async function appEnvironment(
  db: Kysely<Database>,
  e: AppEnvContext,
  redactSystem: boolean,
  secrets: SecretBox,
  /** Set when the app has a file-based binding feature: what replaces VCAP_SERVICES (binding-files.ts). */
  fileDelivery?: Record<string, string>,
): Promise<AppEnvironment> {
  return {
    environment_variables: openEnvVars(secrets, e.app.environment_variables),
    staging_env_json: await environmentVariableGroupVars(db, 'staging'),
    running_env_json: await environmentVariableGroupVars(db, 'running'),
    system_env_json: redactSystem
      ? { redacted_message: '[PRIVATE DATA HIDDEN]' }
      : (fileDelivery ?? { VCAP_SERVICES: await vcapServices(db, e.app.guid, secrets) }),
    application_env_json: { VCAP_APPLICATION: await vcapApplication(db, e) },
  };
}

/** The variables of one group, for building app environments (staging: staging group; running: running group). */
export async function environmentVariableGroupVars(db: Kysely<Database>, name: EnvGroupName): Promise<Record<string, string>> {
  const row = await db.selectFrom('environment_variable_groups').select('variables').where('name', '=', name).executeTakeFirst();
  return row ? parseVariables(row.variables) : {};
}
