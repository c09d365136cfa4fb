import type { Config } from '../config/config.ts';
import { newGuid, type Store } from '../store/store.ts';
import { seedBuiltinBuildpacks } from './buildpacks.ts';

export const DEFAULT_STACK = 'cflinuxfs4';

/**
 * Seeds what a fresh installation needs and Cloud Controller also seeds: a default stack, the
 * `default` organization quota, the shared apps domain and the two environment variable groups.
 * Idempotent: runs on every start and only adds what is missing.
 */
export async function seedPlatform(store: Store, config: Config): Promise<void> {
  await store.write(async (tx) => {
    const stack = await tx.db.selectFrom('stacks').select('guid').where('is_default', '=', 1).executeTakeFirst();
    if (!stack) {
      await tx.insertIfAbsent(
        'stacks',
        {
          name: DEFAULT_STACK,
          description: 'Kiln local runtime: apps run as processes on the host',
          build_rootfs_image: DEFAULT_STACK,
          run_rootfs_image: DEFAULT_STACK,
          is_default: 1,
        },
        ['name'],
      );
    }

    const quota = await tx.db.selectFrom('organization_quotas').select('guid').where('name', '=', 'default').executeTakeFirst();
    if (!quota) {
      const guid = newGuid();
      await tx.insert('organization_quotas', {
        guid,
        name: 'default',
        total_memory_in_mb: 10240,
        per_process_memory_in_mb: null,
        total_instances: null,
        per_app_tasks: null,
        log_rate_limit_in_bytes_per_second: null,
        paid_services_allowed: 1,
        total_service_instances: 100,
        total_service_keys: null,
        total_routes: 1000,
        total_reserved_ports: 0,
        total_domains: null,
      });
    }

    const domain = await tx.db.selectFrom('domains').select('guid').where('name', '=', config.appsDomain).executeTakeFirst();
    if (!domain) {
      const guid = newGuid();
      await tx.insert('domains', {
        guid,
        name: config.appsDomain,
        internal: 0,
        owning_organization_guid: null,
        router_group_guid: null,
      });
    }

    for (const name of ['running', 'staging']) {
      await tx.db
        .insertInto('environment_variable_groups')
        .values({ name, variables: '{}', updated_at: tx.now })
        .onConflict((oc) => oc.column('name').doNothing())
        .execute();
    }
  });
  await seedBuiltinBuildpacks(store);
}
