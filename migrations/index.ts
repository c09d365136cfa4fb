import type { KilnMigration } from './helpers.ts';
import { foundation } from './0001_foundation.ts';
import { rolesUnique } from './0003_roles.ts';
import { domainsStacks } from './0004_domains_stacks.ts';
import { quotas } from './0006_quotas.ts';
import { isolationSegments } from './0007_isolation_segments.ts';
import { listIndexes } from './0008_list_indexes.ts';
import { apps } from './0010_apps.ts';
import { buildpacks } from './0011_buildpacks.ts';
import { deployments } from './0013_deployments.ts';
import { tasks } from './0012_tasks.ts';
import { sidecars } from './0014_sidecars.ts';
import { appSandbox } from './0015_app_sandbox.ts';
import { deploymentProcesses } from './0016_deployment_processes.ts';
import { instanceCrashes } from './0017_instance_crashes.ts';
import { routePolicies } from './0018_route_policies.ts';
import { conditions } from './0030_conditions.ts';
import { locksRegistryCredentials } from './0040_locks_registry_credentials.ts';
import { serviceExtensions } from './0056_service_extensions.ts';
import { gitSources } from './0065_git_sources.ts';
import { services } from './0050_services.ts';
import { serviceUsageEvents } from './0051_service_usage_events.ts';
import { appUsageEvents } from './0052_app_usage_events.ts';
import { appBindingFeatures } from './0053_app_binding_features.ts';
import { taskUsageEvents } from './0054_task_usage_events.ts';
import { publishedInstances } from './0075_published_instances.ts';
import { changesNotify } from './0076_changes_notify.ts';
import { listCoveringIndexes } from './0085_list_covering_indexes.ts';
import { metadataCoveringIndexes } from './0086_metadata_covering_indexes.ts';
import { rowCounts } from './0087_row_counts.ts';

/** Every migration, keyed by a name that sorts in the order they must run. */
export const migrations: Record<string, KilnMigration> = {
  '0001_foundation': foundation,
  '0003_roles': rolesUnique,
  '0004_domains_stacks': domainsStacks,
  '0006_quotas': quotas,
  '0007_isolation_segments': isolationSegments,
  '0008_list_indexes': listIndexes,
  '0010_apps': apps,
  '0011_buildpacks': buildpacks,
  '0012_tasks': tasks,
  '0013_deployments': deployments,
  '0014_sidecars': sidecars,
  '0015_app_sandbox': appSandbox,
  '0016_deployment_processes': deploymentProcesses,
  '0017_instance_crashes': instanceCrashes,
  '0018_route_policies': routePolicies,
  '0030_conditions': conditions,
  '0040_locks_registry_credentials': locksRegistryCredentials,
  '0050_services': services,
  '0051_service_usage_events': serviceUsageEvents,
  '0052_app_usage_events': appUsageEvents,
  '0053_app_binding_features': appBindingFeatures,
  '0054_task_usage_events': taskUsageEvents,
  '0056_service_extensions': serviceExtensions,
  '0065_git_sources': gitSources,
  '0075_published_instances': publishedInstances,
  '0076_changes_notify': changesNotify,
  '0085_list_covering_indexes': listCoveringIndexes,
  '0086_metadata_covering_indexes': metadataCoveringIndexes,
  '0087_row_counts': rowCounts,
};
