import type { Api, AppDeps } from '../context.ts';
import { registerJobs } from './jobs.ts';
import { registerOrganizations } from './organizations.ts';
import { registerRoot } from './root.ts';

/** Every CF resource router, in one list so the API's surface is visible at a glance. */
const routers: Array<(app: Api, deps: AppDeps) => void> = [
  registerRoot,
  registerJobs,
  registerOrganizations,
];

export function registerResources(app: Api, deps: AppDeps): void {
  for (const register of routers) register(app, deps);
}
