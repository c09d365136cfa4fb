import type { Logger } from 'pino';
import type { Runtime } from '../runtime/runtime.ts';
import { bindingFilesOf, IncompatibleBindings } from '../lifecycle/binding-files.ts';
import type { Store } from '../store/store.ts';
import type { Reconciler } from './runtime/controller.ts';

export interface BindingFilesControllerDeps {
  store: Store;
  runtime: Runtime;
  log: Logger;
}

/**
 * Keeps the binding files of running instances and tasks current (issue 9 §6): with `file-based-vcap-services` or
 * `service-binding-k8s`, a binding created or deleted, or credentials changed (a user-provided instance's PATCH),
 * reach a running app without a restart — files rewritten in place, atomically for a reader (see the runtime's
 * binding-files.ts). The variable the app started with (VCAP_SERVICES, or the other kind of files) is never
 * changed underneath it: that takes a restart, as in CF. Keyed by app guid; level-triggered: it computes the
 * files from the store and the runtime writes only when they differ. Nothing to survive a crash: instances
 * started after one get the current files from the process controller.
 */
export function bindingFilesController(deps: BindingFilesControllerDeps): Reconciler {
  const { store, runtime, log } = deps;

  /** Apps that receive bindings as files (a deleted binding no longer names its app: all of them look again). */
  async function appsWithFiles(): Promise<string[]> {
    const rows = await store.db
      .selectFrom('apps')
      .select('guid')
      .where((eb) => eb.or([eb('service_binding_k8s_enabled', '=', 1), eb('file_based_vcap_services_enabled', '=', 1)]))
      .execute();
    return rows.map((r) => r.guid);
  }

  return {
    name: 'binding-files',
    watches: {
      service_credential_bindings: async (c) => {
        const b = await store.db.selectFrom('service_credential_bindings').select(['app_guid', 'type']).where('guid', '=', c.guid).executeTakeFirst();
        if (!b) return appsWithFiles();
        return b.type === 'app' && b.app_guid ? [b.app_guid] : [];
      },
      // Credentials, drain or name of an instance change what its bindings deliver.
      service_instances: async (c) => {
        const rows = await store.db.selectFrom('service_credential_bindings').select('app_guid').where('service_instance_guid', '=', c.guid).where('type', '=', 'app').execute();
        return [...new Set(rows.map((r) => r.app_guid).filter((g): g is string => g !== null))];
      },
    },
    listKeys: appsWithFiles,
    async reconcile(appGuid) {
      if (!runtime.updateBindingFiles) return;
      const app = await store.db
        .selectFrom('apps')
        .select(['guid', 'service_binding_k8s_enabled', 'file_based_vcap_services_enabled'])
        .where('guid', '=', appGuid)
        .executeTakeFirst();
      if (!app) return;
      try {
        const files = await bindingFilesOf(store.db, app, store.secrets);
        if (files) runtime.updateBindingFiles(app.guid, files);
      } catch (err) {
        // Running instances keep their files; the next start reports the problem as the process's condition.
        if (err instanceof IncompatibleBindings) log.warn({ app: app.guid, reason: err.message }, 'binding files not updated');
        else throw err;
      }
    },
  };
}
