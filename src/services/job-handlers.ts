import type { PlatformNames } from '../domain/domains.ts';
import type { Store } from '../store/store.ts';
import { registerAppJobs } from './apps.ts';
import { registerBuildpackJobs } from './buildpacks.ts';
import { registerDomainJobs } from './domains.ts';
import { registerDropletJobs } from './droplets.ts';
import type { JobHandlers } from '../lifecycle/jobs.ts';
import { registerManifestJobs } from './manifests.ts';
import { registerOrganizationQuotaJobs } from './organization-quotas.ts';
import { registerOrganizationJobs } from './organizations.ts';
import { registerPackageJobs } from './packages.ts';
import { registerRoleJobs } from './roles.ts';
import { registerRouteJobs } from './route-deletes.ts';
import { registerSecurityGroupJobs } from './security-groups.ts';
import { registerSpaceQuotaJobs } from './space-quotas.ts';
import { registerSpaceJobs } from './spaces.ts';
import { registerUserJobs } from './users.ts';
import { DEFAULT_BROKER_SETTINGS, type BrokerSettings } from './service-catalog.ts';
import { registerServiceBrokerJobs } from './service-brokers.ts';
import { registerBrokerOperationJobs, type BrokerOps } from './broker-operations.ts';
import { registerAdminJobs } from './admin-actions.ts';

/** Registers the asynchronous half of every job-backed operation. */
/** `platform` names the API's hosts, which routes made by manifest apply may not spell. */
export function registerJobHandlers(handlers: JobHandlers, store: Store, platform?: PlatformNames, brokers: BrokerSettings = DEFAULT_BROKER_SETTINGS): BrokerOps {
  registerOrganizationJobs(handlers, store);
  registerSpaceJobs(handlers, store);
  registerRoleJobs(handlers, store);
  registerUserJobs(handlers, store);
  registerOrganizationQuotaJobs(handlers, store);
  registerSpaceQuotaJobs(handlers, store);
  registerDomainJobs(handlers, store);
  registerSecurityGroupJobs(handlers, store);
  registerAppJobs(handlers, store);
  registerRouteJobs(handlers, store);
  registerPackageJobs(handlers, store);
  registerDropletJobs(handlers, store);
  registerManifestJobs(handlers, store, platform);
  registerBuildpackJobs(handlers, store);
  registerServiceBrokerJobs(handlers, store, brokers);
  registerAdminJobs(handlers, store);
  return registerBrokerOperationJobs(handlers, store, brokers);
}
