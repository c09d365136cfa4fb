import type { Logger } from 'pino';
import type { Runtime } from '../runtime/runtime.ts';
import type { Backend, RouteAccess } from '../router/route-table.ts';
import { policySourcesByRoute } from '../lifecycle/policy-sources.ts';
import { routeKey } from '../router/route-table.ts';
import type { Router } from '../router/router.ts';
import type { Store } from '../store/store.ts';
import type { Reconciler, WatchMapper } from './runtime/controller.ts';
import { SingleFlight } from './runtime/single-flight.ts';

/** The routing controller's name and its one key: the whole table is recomputed on every pass. */
export const ROUTING_CONTROLLER = 'routing';
const TABLE_KEY = 'table';
const table: WatchMapper = () => [TABLE_KEY];

/**
 * Keeps the router's table equal to "routes with destinations × RUNNING instances of the destination process",
 * with the route policies of routes on domains that enforce them.
 * Level-triggered: every sync recomputes the whole table from the store and the runtime, so a missed event only
 * delays convergence until the next one. Syncs coalesce: many changes in a burst cause at most two passes.
 * The manager runs it as a reconciler with the single key `table` (see `reconciler`); `schedule` syncs now, for
 * the first table at start and for the deployment controller's "are the new instances routed yet".
 */
export class RoutingController {
  private readonly passes = new SingleFlight(
    () => this.sync(),
    (err) => this.log.error({ err }, 'routing table sync failed'),
  );
  /** Instances being drained: never routed again, whatever the runtime says, until they are gone. */
  private readonly draining = new Set<string>();

  constructor(
    private readonly store: Store,
    /** Where instances are read: the runtime, or on a follower replica the leader's published instances. */
    private readonly runtime: Pick<Runtime, 'listInstances'>,
    private readonly router: Router,
    private readonly log: Logger,
  ) {}

  /** The reconciler the manager runs: any change to what decides routing, or to an instance, resyncs the table. */
  reconciler(): Reconciler {
    return {
      name: ROUTING_CONTROLLER,
      watches: Object.fromEntries(WATCHED.map((kind) => [kind, table])),
      runtimeEvents: { instance: () => [TABLE_KEY] },
      concurrency: 1,
      listKeys: async () => [TABLE_KEY],
      // Through schedule, so a pass the deployment controller asked for and this one never interleave.
      reconcile: () => this.schedule(),
    };
  }

  /** Whether the instance is being drained (and so no longer routed). */
  isDraining(instanceId: string): boolean {
    return this.draining.has(instanceId);
  }

  /** Removes an instance from routing now and resolves when its in-flight requests are done. */
  async drain(instanceId: string): Promise<void> {
    this.draining.add(instanceId);
    await this.router.drain(instanceId);
  }

  schedule(): Promise<void> {
    return this.passes.run();
  }

  private async sync(): Promise<void> {
    const rows = await this.store.db
      .selectFrom('routes')
      .innerJoin('domains', 'domains.guid', 'routes.domain_guid')
      .innerJoin('spaces', 'spaces.guid', 'routes.space_guid')
      .leftJoin('route_destinations', 'route_destinations.route_guid', 'routes.guid')
      .leftJoin('processes', (j) =>
        j.onRef('processes.app_guid', '=', 'route_destinations.app_guid').onRef('processes.type', '=', 'route_destinations.process_type'),
      )
      .select([
        'routes.guid',
        'routes.host',
        'routes.path',
        'routes.protocol',
        'routes.space_guid',
        'spaces.organization_guid',
        'domains.name as domain',
        'domains.enforce_route_policies',
        'domains.route_policies_scope',
        'processes.guid as process_guid',
      ])
      .where('routes.protocol', '!=', 'tcp')
      .execute();

    const instances = this.runtime.listInstances();
    const live = new Set(instances.map((i) => i.id));
    for (const id of this.draining) if (!live.has(id)) this.draining.delete(id);
    const byProcess = new Map<string, Backend[]>();
    for (const i of instances) {
      if (i.state !== 'RUNNING' || i.port === undefined || this.draining.has(i.id)) continue;
      let list = byProcess.get(i.processGuid);
      if (!list) byProcess.set(i.processGuid, (list = []));
      list.push({ instanceId: i.id, processGuid: i.processGuid, appGuid: i.appGuid, index: i.index, host: i.host, port: i.port });
    }

    // Routes bound to a route service (user-provided `route_service_url`, or the broker's answer to a route binding).
    const bound = await this.store.db
      .selectFrom('service_route_bindings')
      .innerJoin('routes', 'routes.guid', 'service_route_bindings.route_guid')
      .innerJoin('domains', 'domains.guid', 'routes.domain_guid')
      .select(['routes.host', 'routes.path', 'domains.name as domain', 'service_route_bindings.route_service_url'])
      .where('service_route_bindings.last_operation_type', '=', 'create')
      .where('service_route_bindings.last_operation_state', '=', 'succeeded')
      .execute();
    const services = new Map<string, string>();
    for (const b of bound) if (b.route_service_url) services.set(routeKey(b.host ? `${b.host}.${b.domain}` : b.domain, b.path), b.route_service_url);

    const policies = await policySourcesByRoute(this.store.db);
    const desired = new Map<string, Backend[]>();
    const access = new Map<string, RouteAccess>();
    for (const r of rows) {
      const key = routeKey(r.host ? `${r.host}.${r.domain}` : r.domain, r.path);
      const backends = desired.get(key) ?? [];
      if (r.process_guid) backends.push(...(byProcess.get(r.process_guid) ?? []));
      desired.set(key, backends);
      // An enforcing domain's route without policies admits nobody (gorouter's default deny).
      if (r.enforce_route_policies === 1) {
        access.set(key, {
          sources: policies.get(r.guid) ?? [],
          ...(r.route_policies_scope ? { scope: r.route_policies_scope } : {}),
          spaceGuid: r.space_guid,
          organizationGuid: r.organization_guid,
        });
      }
    }
    for (const list of desired.values()) list.sort((a, b) => (a.instanceId < b.instanceId ? -1 : a.instanceId > b.instanceId ? 1 : 0));
    const table = this.router.table;
    for (const route of table.routes()) if (!desired.has(route.key)) table.removeRoute(route.key);
    for (const [key, backends] of desired) {
      const current = table.get(key)?.backends;
      const same = current && current.length === backends.length && current.every((b, i) => b.instanceId === backends[i]!.instanceId && b.port === backends[i]!.port);
      const route = same ? table.get(key)! : table.setBackends(key, backends);
      route.routeServiceUrl = services.get(key);
      table.setAccess(key, access.get(key));
    }
  }

}

const WATCHED = ['routes', 'route_destinations', 'processes', 'apps', 'domains', 'service_route_bindings', 'route_policies'];
