import type { Api, AppDeps } from '../context.ts';
import { registerKilnOpenApi } from '../kiln/openapi.ts';
import { registerApps } from './apps.ts';
import { registerAuditEvents } from './audit-events.ts';
import { registerBuildpacks } from './buildpacks.ts';
import { registerBuilds } from './builds.ts';
import { registerDeployments } from './deployments.ts';
import { registerDomains } from './domains.ts';
import { registerDroplets } from './droplets.ts';
import { registerEnvironmentVariableGroups } from './environment-variable-groups.ts';
import { registerFeatureFlags } from './feature-flags.ts';
import { registerIsolationSegments } from './isolation-segments.ts';
import { registerJobs } from './jobs.ts';
import { registerLocks } from './locks.ts';
import { registerManifests } from './manifests.ts';
import { registerOrganizationQuotas } from './organization-quotas.ts';
import { registerOrganizations } from './organizations.ts';
import { registerPackages } from './packages.ts';
import { registerProcesses } from './processes.ts';
import { registerRegistryCredentials } from './registry-credentials.ts';
import { registerResourceMatches } from './resource-matches.ts';
import { registerRevisions } from './revisions.ts';
import { registerServiceBrokers } from './service-brokers.ts';
import { registerServiceOfferings } from './service-offerings.ts';
import { registerServiceInstances } from './service-instances.ts';
import { registerServiceBindings } from './service-bindings.ts';
import { registerServiceUsageEvents } from './service-usage-events.ts';
import { registerAppUsageEvents } from './app-usage-events.ts';
import { registerAdmin } from './admin.ts';
import { registerServiceExtensions } from './service-extensions.ts';
import { registerRoles } from './roles.ts';
import { registerRoot } from './root.ts';
import { registerRoutes } from './routes.ts';
import { registerRoutePolicies } from './route-policies.ts';
import { registerSecurityGroups } from './security-groups.ts';
import { registerSidecars } from './sidecars.ts';
import { registerSpaceQuotas } from './space-quotas.ts';
import { registerSpaces } from './spaces.ts';
import { registerStacks } from './stacks.ts';
import { registerTasks } from './tasks.ts';
import { registerUsers } from './users.ts';

/** Every CF resource router, in one list so the API's surface is visible at a glance. */
const routers: Array<(app: Api, deps: AppDeps) => void> = [
  registerRoot,
  registerJobs,
  registerOrganizations,
  registerSpaces,
  registerRoles,
  registerUsers,
  registerFeatureFlags,
  registerEnvironmentVariableGroups,
  registerAuditEvents,
  registerIsolationSegments,
  registerOrganizationQuotas,
  registerSpaceQuotas,
  registerDomains,
  registerStacks,
  registerSecurityGroups,
  registerApps,
  registerProcesses,
  registerRoutes,
  registerRoutePolicies,
  registerPackages,
  registerBuilds,
  registerDroplets,
  registerResourceMatches,
  registerManifests,
  registerBuildpacks,
  registerTasks,
  registerDeployments,
  registerRevisions,
  registerSidecars,
  registerLocks,
  registerRegistryCredentials,
  registerKilnOpenApi,
  registerServiceBrokers,
  registerServiceOfferings,
  registerServiceInstances,
  registerServiceBindings,
  registerServiceUsageEvents,
  registerAppUsageEvents,
  registerAdmin,
  registerServiceExtensions,
];

export function registerResources(app: Api, deps: AppDeps): void {
  for (const register of routers) register(app, deps);
}
