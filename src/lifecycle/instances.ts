/** Instances as the runtime reports them, and what runs beside each instance of a process type (its sidecars). */
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';

export type InstanceState = 'STARTING' | 'RUNNING' | 'CRASHED' | 'STOPPING' | 'DOWN';

/** One actual instance as the runtime sees it. */
export interface ObservedInstance {
  index: number;
  state: InstanceState;
  instanceGuid?: string;
  /** Address the router reaches the instance on. */
  host?: string;
  internalIp?: string;
  /** Seconds since the instance started. */
  uptime?: number;
  /** Unix time (seconds) of the last state change. */
  since?: number;
  routable?: boolean | null;
  details?: string | null;
  ports?: Array<{ external: number; internal: number }>;
  /** Measured usage; absent when metrics are unavailable. */
  usage?: { time: string; cpu: number; cpu_entitlement?: number; mem: number; disk: number; log_rate: number };
}

/**
 * What Kiln's runtime reports about and does to running instances. Wired through AppDeps.observed; without
 * it (no runtime), every desired instance is reported DOWN and termination has nothing to stop.
 */
export interface ObservedInstances {
  /** Actual instances of a process (any indexes, any order). */
  statsFor(processGuid: string): Promise<ObservedInstance[]>;
  /**
   * The same instances without measuring them (no usage or uptime, which cost the runtime a read per instance):
   * all `process_instances` shows. Optional; statsFor answers when absent.
   */
  statesFor?(processGuid: string): Promise<ObservedInstance[]>;
  /** Stops one instance so the controller replaces it; false when there is no such instance. */
  terminate(processGuid: string, index: number): Promise<boolean>;
}

/** For the process controller: what runs beside each instance of a process type, oldest sidecar first. */
export async function sidecarsOfProcessType(db: Kysely<Database>, appGuid: string, type: string): Promise<Array<{ name: string; command: string }>> {
  return db
    .selectFrom('sidecars')
    .innerJoin('sidecar_process_types', 'sidecar_process_types.sidecar_guid', 'sidecars.guid')
    .select(['sidecars.name', 'sidecars.command'])
    .where('sidecar_process_types.app_guid', '=', appGuid)
    .where('sidecar_process_types.type', '=', type)
    .orderBy('sidecars.created_at')
    .orderBy('sidecars.guid')
    .execute();
}
