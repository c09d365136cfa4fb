import type { Kysely } from 'kysely';
import type { BindingFiles } from '../runtime/runtime.ts';
import type { Database, Row } from '../store/schema.ts';
import type { SecretBox } from '../store/secret-box.ts';
import { vcapServices } from './app-env.ts';

/**
 * How an app's service bindings reach its processes (issue 9 §6, CC's ServiceBindingFilesBuilder): the
 * VCAP_SERVICES variable by default; with the app feature `file-based-vcap-services` the same JSON in a file
 * (VCAP_SERVICES_FILE_PATH); with `service-binding-k8s` the servicebinding.io layout under SERVICE_BINDING_ROOT —
 * one directory per binding, a file per credential key, then the entry's other fields (overwriting a credential
 * of the same name; CC's six VCAP attribute names with dashes), plus `type` and `provider` (the label). Strings are
 * written raw, other values as JSON; null, `[]` and `{}` make no file. With a file feature VCAP_SERVICES is not in
 * the environment, as in CF. Only bindings whose creation succeeded count (vcapServices already filters them).
 */

/** Where Diego mounts the binding files; the runtime maps it to the host path when there is no sandbox. */
export const SERVICE_BINDING_ROOT = '/etc/cf-service-bindings';

const NAME = /^[a-z0-9\-.]{1,253}$/;
const KEY = /^[a-z0-9\-._]{1,253}$/;
const MAX_BYTES = 1_000_000;
const DASHED = new Set(['binding_guid', 'binding_name', 'instance_guid', 'instance_name', 'syslog_drain_url', 'volume_mounts']);

/** The bindings cannot be laid out as files (CC's IncompatibleBindings): the process cannot start with them. */
export class IncompatibleBindings extends Error {
  override readonly name = 'IncompatibleBindings';
}

/** The servicebinding.io files of a VCAP_SERVICES value: `<binding name>/<key>` → content. */
export function k8sBindingFiles(vcap: Record<string, unknown[]>): Record<string, string> {
  const files: Record<string, string> = {};
  const names = new Set<string>();
  let total = 0;
  const add = (name: string, key: string, value: unknown) => {
    if (!KEY.test(key)) throw new IncompatibleBindings(`Invalid file name: ${key}`);
    if (value === null || value === undefined) return;
    let content: string;
    if (typeof value === 'string') content = value;
    else if ((Array.isArray(value) && value.length === 0) || (typeof value === 'object' && Object.keys(value).length === 0)) return;
    else content = JSON.stringify(value);
    const path = `${name}/${key}`;
    files[path] = content;
    total += Buffer.byteLength(path) + Buffer.byteLength(content);
  };
  for (const entries of Object.values(vcap)) {
    for (const raw of entries) {
      const { credentials, ...rest } = raw as Record<string, unknown>;
      const name = String(rest.name);
      if (!NAME.test(name)) throw new IncompatibleBindings(`Invalid binding name: '${name}'. Name must match ${NAME.toString()}`);
      if (names.has(name)) throw new IncompatibleBindings(`Duplicate binding name: ${name}`);
      names.add(name);
      if (credentials && typeof credentials === 'object') for (const [k, v] of Object.entries(credentials)) add(name, k, v);
      for (const [k, v] of Object.entries(rest)) add(name, DASHED.has(k) ? k.replace(/_/g, '-') : k, v);
      add(name, 'type', rest.label);
      add(name, 'provider', rest.label);
    }
  }
  if (total > MAX_BYTES) throw new IncompatibleBindings(`Bindings exceed the maximum allowed bytesize of ${MAX_BYTES}: ${total}`);
  return files;
}

type DeliveryApp = Pick<Row<'apps'>, 'guid' | 'service_binding_k8s_enabled' | 'file_based_vcap_services_enabled'>;

/** The kind of files the app's features ask for, if any. */
export function bindingFileKind(app: Omit<DeliveryApp, 'guid'>): BindingFiles['kind'] | undefined {
  if (app.service_binding_k8s_enabled === 1) return 'k8s';
  if (app.file_based_vcap_services_enabled === 1) return 'vcap-services';
  return undefined;
}

/** The app's bindings as files, when a feature asks for them (throws IncompatibleBindings). */
export async function bindingFilesOf(db: Kysely<Database>, app: DeliveryApp, secrets: SecretBox): Promise<BindingFiles | undefined> {
  const kind = bindingFileKind(app);
  if (!kind) return undefined;
  const vcap = await vcapServices(db, app.guid, secrets);
  return kind === 'k8s' ? { kind, files: k8sBindingFiles(vcap) } : { kind, files: { vcap_services: JSON.stringify(vcap) } };
}

/**
 * What a process or task of the app is started with: VCAP_SERVICES in its env, or binding files. A runtime that
 * cannot deliver files (`filesSupported` false: the Kubernetes runtime so far) gets VCAP_SERVICES whatever the
 * features say, so an app never loses its bindings.
 */
export async function serviceDelivery(
  db: Kysely<Database>,
  app: DeliveryApp,
  secrets: SecretBox,
  filesSupported = true,
): Promise<{ env: Record<string, string>; bindingFiles?: BindingFiles }> {
  const bindingFiles = filesSupported ? await bindingFilesOf(db, app, secrets) : undefined;
  if (bindingFiles) return { env: {}, bindingFiles };
  return { env: { VCAP_SERVICES: JSON.stringify(await vcapServices(db, app.guid, secrets)) } };
}

/** `system_env_json` of `GET /v3/apps/:guid/env` for an app with a file feature (CONVENTIONS.md §20.1). */
export function fileDeliveryEnv(app: Omit<DeliveryApp, 'guid'>): Record<string, string> | undefined {
  const kind = bindingFileKind(app);
  if (kind === 'k8s') return { SERVICE_BINDING_ROOT };
  if (kind === 'vcap-services') return { VCAP_SERVICES_FILE_PATH: `${SERVICE_BINDING_ROOT}/vcap_services` };
  return undefined;
}
