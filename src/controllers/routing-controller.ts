import type { Logger } from 'pino';
import type { Runtime } from '../runtime/runtime.ts';
import type { Backend } from '../router/route-table.ts';
import { routeKey } from '../router/route-table.ts';
import type { Router } from '../router/router.ts';
import type { Store } from '../store/store.ts';

/**
 * Keeps the router's table equal to "routes with destinations × RUNNING instances of the destination process".
 * Level-triggered: every sync recomputes the whole table from the store and the runtime, so a missed event only
 * delays convergence until the next one. Syncs coalesce: many changes in a burst cause at most two passes.
 */
export class RoutingController {
  private running: Promise<void> | undefined;
  private again = false;
  /** Instances being drained: never routed again, whatever the runtime says, until they are gone. */
  private readonly draining = new Set<string>();
  private readonly offRuntime: () => void;
  private readonly onChanges = (changes: Array<{ kind: string }>) => {
    if (changes.some((c) => WATCHED.has(c.kind))) this.schedule();
  };
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Store,
    private readonly runtime: Runtime,
    private readonly router: Router,
    private readonly log: Logger,
  ) {
    this.offRuntime = runtime.onChange((e) => {
      if (e.kind === 'instance') this.schedule();
    });
    store.events.on('changes', this.onChanges);
    // Writes by other replicas do not emit local events; a slow poll covers them.
    this.timer = setInterval(() => this.schedule(), 5000);
    this.timer.unref();
  }

  /** Removes an instance from routing now and resolves when its in-flight requests are done. */
  async drain(instanceId: string): Promise<void> {
    this.draining.add(instanceId);
    await this.router.drain(instanceId);
  }

  schedule(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.sync();
        } while (this.again);
      } catch (err) {
        this.log.error({ err }, 'routing table sync failed');
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  private async sync(): Promise<void> {
    const rows = await this.store.db
      .selectFrom('routes')
      .innerJoin('domains', 'domains.guid', 'routes.domain_guid')
      .leftJoin('route_destinations', 'route_destinations.route_guid', 'routes.guid')
      .leftJoin('processes', (j) =>
        j.onRef('processes.app_guid', '=', 'route_destinations.app_guid').onRef('processes.type', '=', 'route_destinations.process_type'),
      )
      .select(['routes.host', 'routes.path', 'routes.protocol', 'domains.name as domain', 'processes.guid as process_guid'])
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

    const desired = new Map<string, Backend[]>();
    for (const r of rows) {
      const key = routeKey(r.host ? `${r.host}.${r.domain}` : r.domain, r.path);
      const backends = desired.get(key) ?? [];
      if (r.process_guid) backends.push(...(byProcess.get(r.process_guid) ?? []));
      desired.set(key, backends);
    }
    for (const list of desired.values()) list.sort((a, b) => (a.instanceId < b.instanceId ? -1 : a.instanceId > b.instanceId ? 1 : 0));
    const table = this.router.table;
    for (const route of table.routes()) if (!desired.has(route.key)) table.removeRoute(route.key);
    for (const [key, backends] of desired) {
      const current = table.get(key)?.backends;
      const same = current && current.length === backends.length && current.every((b, i) => b.instanceId === backends[i]!.instanceId && b.port === backends[i]!.port);
      if (!same) table.setBackends(key, backends);
    }
  }

  stop(): void {
    this.offRuntime();
    this.store.events.off('changes', this.onChanges);
    if (this.timer) clearInterval(this.timer);
  }
}

const WATCHED = new Set(['routes', 'route_destinations', 'processes', 'apps', 'domains']);
