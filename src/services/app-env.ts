import type { Kysely } from 'kysely';
import { parseJsonObject } from '../domain/apps.ts';
import type { Database, Row } from '../store/schema.ts';
import { environmentVariableGroupVars } from './environment-variable-groups.ts';

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
export async function runningEnvironment(db: Kysely<Database>, app: Pick<Row<'apps'>, 'environment_variables'>): Promise<Record<string, string>> {
  return { ...(await environmentVariableGroupVars(db, 'running')), ...parseJsonObject(app.environment_variables) };
}

/** The staging counterpart of runningEnvironment. */
export async function stagingEnvironment(db: Kysely<Database>, app: Pick<Row<'apps'>, 'environment_variables'>): Promise<Record<string, string>> {
  return { ...(await environmentVariableGroupVars(db, 'staging')), ...parseJsonObject(app.environment_variables) };
}

/** `VCAP_SERVICES` grouped by service label. Kiln has no service bindings yet, so it is empty. */
export async function vcapServices(_db: Kysely<Database>, _appGuid: string): Promise<Record<string, unknown[]>> {
  return {};
}

export interface AppEnvironment {
  environment_variables: Record<string, string>;
  staging_env_json: Record<string, string>;
  running_env_json: Record<string, string>;
  system_env_json: Record<string, unknown>;
  application_env_json: Record<string, unknown>;
}

/** The body of `GET /v3/apps/:guid/env`; `redactSystem` hides VCAP_SERVICES from callers without secret access. */
export async function appEnvironment(db: Kysely<Database>, e: AppEnvContext, redactSystem: boolean): Promise<AppEnvironment> {
  return {
    environment_variables: parseJsonObject(e.app.environment_variables),
    staging_env_json: await environmentVariableGroupVars(db, 'staging'),
    running_env_json: await environmentVariableGroupVars(db, 'running'),
    system_env_json: redactSystem
      ? { redacted_message: '[PRIVATE DATA HIDDEN]' }
      : { VCAP_SERVICES: await vcapServices(db, e.app.guid) },
    application_env_json: { VCAP_APPLICATION: await vcapApplication(db, e) },
  };
}
