import pg from 'pg';
import type { Logger } from 'pino';
import { sql } from 'kysely';
import type { InstanceStatus, Runtime } from '../runtime/runtime.ts';
import type { Store } from '../store/store.ts';

/** Notified after the leader published its instances; and by a follower asking the leader to restart one. */
export const INSTANCES_CHANNEL = 'kiln_instances';
export const RESTART_CHANNEL = 'kiln_restart_instance';

/** The part of a Runtime the API's stats and the router read. */
export type InstanceView = Pick<Runtime, 'listInstances' | 'stats' | 'restartInstance'>;

/**
 * The leader publishes what its runtime runs (`published_instances`, rewritten whole on every change, at most
 * every `debounceMs`, and every `refreshMs` anyway), so that followers can answer process stats and route app
 * traffic to the leader's instances. Instances being drained are published as not RUNNING, so followers stop
 * routing to them as the leader does.
 */
export class InstancePublisher {
  private timer: NodeJS.Timeout | undefined;
  private refresh: NodeJS.Timeout | undefined;
  private off: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private active = false;

  constructor(
    private readonly opts: {
      store: Store;
      runtime: Runtime;
      replicaId: string;
      isDraining: (instanceId: string) => boolean;
      log: Logger;
      debounceMs?: number;
      refreshMs?: number;
    },
  ) {}

  async start(): Promise<void> {
    this.active = true;
    this.off = this.opts.runtime.onChange((e) => {
      if (e.kind === 'instance') this.soon();
    });
    this.refresh = setInterval(() => this.soon(), this.opts.refreshMs ?? 10_000);
    this.refresh.unref();
    await this.publish();
  }

  /** Publishes after the debounce (coalescing a burst of changes). */
  soon(): void {
    if (!this.active || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.publish();
    }, this.opts.debounceMs ?? 100);
  }

  publish(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          if (this.active) await this.write();
        } while (this.again);
      } catch (err) {
        this.opts.log.warn({ err }, 'publishing the instances for the other replicas failed');
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  private async write(): Promise<void> {
    const byProcess = new Map<string, InstanceStatus[]>();
    for (const i of this.opts.runtime.listInstances()) {
      const published: InstanceStatus = this.opts.isDraining(i.id) && i.state === 'RUNNING' ? { ...i, state: 'STOPPING' } : i;
      let list = byProcess.get(i.processGuid);
      if (!list) byProcess.set(i.processGuid, (list = []));
      list.push(published);
    }
    await this.opts.store.write(async (tx) => {
      await tx.db.deleteFrom('published_instances').execute();
      const rows = [...byProcess].map(([process_guid, list]) => ({
        process_guid,
        replica: this.opts.replicaId,
        instances: JSON.stringify(list),
        published_at: tx.now,
      }));
      for (let i = 0; i < rows.length; i += 200) await tx.db.insertInto('published_instances').values(rows.slice(i, i + 200)).execute();
      await sql`select pg_notify(${INSTANCES_CHANNEL}, '')`.execute(tx.db);
    });
  }

  async stop(): Promise<void> {
    this.active = false;
    this.off?.();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.refresh) clearInterval(this.refresh);
    await this.running;
  }
}

/**
 * A follower's view of the leader's instances: the published rows, reloaded whenever the leader notifies. Stats
 * carry no usage (only the leader measures); a restart is passed to the leader by NOTIFY.
 */
export class PublishedInstances implements InstanceView {
  private cache: InstanceStatus[] = [];
  private loading: Promise<void> | undefined;
  private reloadAgain = false;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly onReload: () => void,
  ) {}

  listInstances(filter: { processGuid?: string; appGuid?: string } = {}): InstanceStatus[] {
    return this.cache.filter((i) => (!filter.processGuid || i.processGuid === filter.processGuid) && (!filter.appGuid || i.appGuid === filter.appGuid));
  }

  async stats(): Promise<undefined> {
    return undefined;
  }

  async restartInstance(id: string): Promise<void> {
    await sql`select pg_notify(${RESTART_CHANNEL}, ${id})`.execute(this.store.db);
  }

  /** Reads the rows again (coalescing concurrent calls into one more pass), then tells `onReload`. */
  reload(): Promise<void> {
    if (this.loading) {
      this.reloadAgain = true;
      return this.loading;
    }
    this.loading = (async () => {
      try {
        do {
          this.reloadAgain = false;
          const rows = await this.store.db.selectFrom('published_instances').select('instances').execute();
          this.cache = rows.flatMap((r) => JSON.parse(r.instances) as InstanceStatus[]);
        } while (this.reloadAgain);
        this.onReload();
      } catch (err) {
        this.log.warn({ err }, "reading the leader's published instances failed");
      } finally {
        this.loading = undefined;
      }
    })();
    return this.loading;
  }
}

/** This replica's view: its own runtime while it leads, the leader's published instances while it follows. */
export function leaderOrPublished(runtime: Runtime, published: PublishedInstances, leading: () => boolean): InstanceView {
  return {
    listInstances: (filter) => (leading() ? runtime.listInstances(filter) : published.listInstances(filter)),
    stats: (id) => (leading() ? runtime.stats(id) : published.stats()),
    restartInstance: (id) => (leading() ? runtime.restartInstance(id) : published.restartInstance(id)),
  };
}

/** Listens on a dedicated connection for the two channels (the ChangeNotifier has its own). */
export async function listenInstances(url: string, handlers: { published: () => void; restart: (id: string) => void }, log: Logger): Promise<() => Promise<void>> {
  let client: pg.Client | undefined;
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;
  const connect = async (): Promise<void> => {
    if (stopped) return;
    const c = new pg.Client({ connectionString: url, application_name: 'kiln-listen-instances', keepAlive: true });
    const again = () => {
      if (client !== c || stopped) return;
      client = undefined;
      retry = setTimeout(() => void connect(), 1000);
      retry.unref();
    };
    c.on('error', again);
    c.on('end', again);
    c.on('notification', (n) => {
      if (n.channel === INSTANCES_CHANNEL) handlers.published();
      else if (n.channel === RESTART_CHANNEL && n.payload) handlers.restart(n.payload);
    });
    try {
      await c.connect();
      await c.query(`listen ${INSTANCES_CHANNEL}; listen ${RESTART_CHANNEL}`);
      client = c;
      handlers.published();
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'could not LISTEN for published instances; retrying');
      c.removeAllListeners();
      c.on('error', () => undefined);
      await c.end().catch(() => undefined);
      retry = setTimeout(() => void connect(), 1000);
      retry.unref();
    }
  };
  await connect();
  return async () => {
    stopped = true;
    if (retry) clearTimeout(retry);
    const c = client;
    client = undefined;
    c?.removeAllListeners();
    c?.on('error', () => undefined);
    await c?.end().catch(() => undefined);
  };
}
