import type { KilnMigration } from './helpers.ts';

/**
 * The app features `service-binding-k8s` and `file-based-vcap-services` (issue 9 §6): service bindings delivered
 * as files (servicebinding.io layout, or VCAP_SERVICES in a file) instead of the VCAP_SERVICES variable. Off by
 * default, mutually exclusive (the API refuses both on).
 */
export const appBindingFeatures: KilnMigration = {
  async up(db) {
    await db.schema.alterTable('apps').addColumn('service_binding_k8s_enabled', 'integer', (c) => c.notNull().defaultTo(0)).execute();
    await db.schema.alterTable('apps').addColumn('file_based_vcap_services_enabled', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  },
};
