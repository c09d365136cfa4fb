import type { Store } from '../store/store.ts';
import type { JobHandlers } from './jobs.ts';
import { registerOrganizationJobs } from './organizations.ts';

/** Registers the asynchronous half of every job-backed operation. */
export function registerJobHandlers(handlers: JobHandlers, store: Store): void {
  registerOrganizationJobs(handlers, store);
}
