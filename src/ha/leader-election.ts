import * as k8s from '@kubernetes/client-node';
import pg from 'pg';
import type { Logger } from 'pino';

/**
 * Who runs the controllers when several Kiln replicas share one PostgreSQL database. Every replica serves the
 * API; one at a time, the leader, runs the controllers. An elector campaigns for one term: it calls `onElected`
 * when this replica wins, and `onLost` when it can no longer be sure it leads — and it calls `onLost` (and waits
 * for it: the controllers stop there) *before* it gives its claim up, and early enough that no other replica can
 * have taken the claim yet (fencing; see each implementation). After a lost term it does not campaign again: the
 * server decides what a demoted replica does (`kiln serve` exits so its supervisor starts it afresh).
 */
export interface LeaderElector {
  readonly kind: 'single' | 'postgres' | 'lease';
  /** Starts campaigning; resolves after the first attempt (and, if it won, once onElected has run). */
  start(): Promise<void>;
  /** Ends the term: stops the controllers (onLost) if leading, then releases the claim at once. */
  stop(): Promise<void>;
  isLeader(): boolean;
  /** The replica that holds the claim now, as far as this one can read it (undefined: nobody). */
  leader(): Promise<string | undefined>;
}

export interface ElectorCallbacks {
  onElected(): Promise<void>;
  onLost(reason: string): Promise<void>;
}

export interface ElectionTiming {
  /** A claim not renewed for this long is free. */
  leaseMs: number;
  /** A leader that could not renew for this long steps down; shorter than leaseMs. */
  renewDeadlineMs: number;
  /** Between renewals and between attempts to acquire. */
  retryMs: number;
}

/** With SQLite exactly one replica runs (see single-replica.ts), so it always leads. */
export class SingleReplica implements LeaderElector {
  readonly kind = 'single';
  private leading = false;
  constructor(
    private readonly replicaId: string,
    private readonly cb: ElectorCallbacks,
  ) {}
  async start(): Promise<void> {
    this.leading = true;
    await this.cb.onElected();
  }
  async stop(): Promise<void> {
    if (this.leading) await this.cb.onLost('stopping');
    this.leading = false;
  }
  isLeader(): boolean {
    return this.leading;
  }
  async leader(): Promise<string | undefined> {
    return this.replicaId;
  }
}

/** The advisory lock's two 32-bit keys: 'kiln' and 1 (the controllers). */
const LOCK_CLASS = 0x6b696c6e;
const LOCK_OBJ = 1;

/**
 * A session-level PostgreSQL advisory lock held on a dedicated connection. The server frees the lock when that
 * session ends, so a leader that dies (SIGKILL, crash) hands over as soon as the kernel closes its socket.
 *
 * Fencing: the leader checks its session every `retryMs`; when the connection errors or ends, or no check has
 * succeeded for `renewDeadlineMs`, it stops its controllers (onLost). A leader cut off from the server without the
 * socket closing keeps the lock until the server's TCP keepalive gives up on the session; this connection sets
 * that to about `leaseMs` (idle leaseMs·0.4 s, then 3 probes leaseMs·0.2 s apart), later than the renew deadline.
 *
 * The connection's `application_name` is `kiln:<replica id>`, which is how any replica names the leader (pg_locks
 * joined with pg_stat_activity), without a table to keep up to date.
 */
export class PostgresLeader implements LeaderElector {
  readonly kind = 'postgres';
  private client: pg.Client | undefined;
  private leading = false;
  private stopped = false;
  private lost = false;
  private timer: NodeJS.Timeout | undefined;
  private lastRenewed = 0;
  private checking = false;

  constructor(
    private readonly opts: {
      url: string;
      replicaId: string;
      timing: ElectionTiming;
      log: Logger;
    } & ElectorCallbacks,
  ) {}

  start(): Promise<void> {
    return new Promise((resolve) => void this.campaign(resolve));
  }

  isLeader(): boolean {
    return this.leading;
  }

  async leader(): Promise<string | undefined> {
    if (!this.client) return undefined;
    const { rows } = await this.client.query<{ name: unknown }>(
      `select a.application_name as name from pg_locks l join pg_stat_activity a on a.pid = l.pid
        where l.locktype = 'advisory' and l.granted and l.classid = $1 and l.objid = $2 and l.objsubid = 2 limit 1`,
      [LOCK_CLASS, LOCK_OBJ],
    );
    const name = rows[0]?.name;
    return typeof name === 'string' && name.startsWith('kiln:') ? name.slice(5) : undefined;
  }

  private async connect(): Promise<pg.Client> {
    const { timing, replicaId } = this.opts;
    const client = new pg.Client({
      connectionString: this.opts.url,
      application_name: `kiln:${replicaId}`,
      keepAlive: true,
      keepAliveInitialDelayMillis: Math.max(1000, Math.round(timing.renewDeadlineMs / 2)),
      connectionTimeoutMillis: timing.renewDeadlineMs,
    });
    client.on('error', (err) => this.connectionGone(client, `the lock connection failed: ${err.message}`));
    client.on('end', () => this.connectionGone(client, 'the lock connection closed'));
    await client.connect();
    const idle = Math.max(1, Math.round((timing.leaseMs * 0.4) / 1000));
    const interval = Math.max(1, Math.round((timing.leaseMs * 0.2) / 1000));
    await client.query(`set tcp_keepalives_idle = ${idle}; set tcp_keepalives_interval = ${interval}; set tcp_keepalives_count = 3`);
    return client;
  }

  /** A leader's session is its lock: losing it ends the term. A follower just connects again. */
  private connectionGone(client: pg.Client, reason: string): void {
    if (this.leading) {
      void this.lose(reason);
    } else if (this.client === client) {
      this.client = undefined;
    }
  }

  private async campaign(firstAttempt: () => void): Promise<void> {
    try {
      await this.campaignLoop(firstAttempt);
    } finally {
      firstAttempt();
    }
  }

  private async campaignLoop(firstAttempt: () => void): Promise<void> {
    while (!this.stopped && !this.leading && !this.lost) {
      try {
        this.client ??= await this.connect();
        const { rows } = await this.client.query<{ ok: boolean }>('select pg_try_advisory_lock($1, $2) as ok', [LOCK_CLASS, LOCK_OBJ]);
        if (rows[0]?.ok) {
          if (this.stopped || this.lost) return;
          this.leading = true;
          this.lastRenewed = Date.now();
          this.opts.log.info({ replica: this.opts.replicaId }, 'elected leader: starting the controllers');
          this.timer = setInterval(() => this.renew(), Math.min(this.opts.timing.retryMs, this.opts.timing.renewDeadlineMs / 2));
          await this.opts.onElected();
          return;
        }
      } catch (err) {
        this.opts.log.warn({ err }, 'leader election: could not reach PostgreSQL; retrying');
        firstAttempt();
        const c = this.client;
        this.client = undefined;
        c?.removeAllListeners('end');
        c?.removeAllListeners('error');
        c?.on('error', () => undefined);
        await c?.end().catch(() => undefined);
      }
      firstAttempt();
      await new Promise((r) => setTimeout(r, this.opts.timing.retryMs));
    }
  }

  /** One check of the lock's session; the watchdog part runs even while a check hangs. */
  private renew(): void {
    if (!this.leading) return;
    if (Date.now() - this.lastRenewed > this.opts.timing.renewDeadlineMs) {
      void this.lose(`no successful check of the lock connection for ${this.opts.timing.renewDeadlineMs} ms`);
      return;
    }
    if (this.checking || !this.client) return;
    this.checking = true;
    this.client.query('select 1').then(
      () => {
        this.lastRenewed = Date.now();
      },
      () => undefined,
    ).finally(() => {
      this.checking = false;
    });
  }

  /** Stops the controllers first, then drops the connection (which frees the lock if the server still holds it). */
  private async lose(reason: string): Promise<void> {
    if (this.lost) return;
    this.lost = true;
    if (this.timer) clearInterval(this.timer);
    if (this.leading) {
      this.leading = false;
      this.opts.log.error({ reason }, 'leadership lost: stopping the controllers');
      await this.opts.onLost(reason).catch((err: unknown) => this.opts.log.error({ err }, 'stopping the controllers failed'));
    }
    const c = this.client;
    this.client = undefined;
    c?.removeAllListeners('end');
    c?.on('error', () => undefined);
    await c?.end().catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.lose('stopping');
  }
}

/**
 * A coordination.k8s.io/v1 Lease, as client-go's leader election uses it. A follower takes the Lease when its
 * record has not changed for `leaseMs` by its own clock (it never compares its clock with the holder's); the
 * leader renews every `retryMs` and steps down (onLost) when it has not renewed for `renewDeadlineMs` or finds
 * the Lease held by someone else. renewDeadline < lease duration, so the old leader has stopped before a
 * follower can consider the Lease expired. Updates carry the resourceVersion read, so two candidates cannot both
 * win one round. A leader that stops releases the Lease (empty holder), so the next one need not wait.
 */
export class LeaseLeader implements LeaderElector {
  readonly kind = 'lease';
  private readonly api: k8s.CoordinationV1Api;
  private leading = false;
  private stopped = false;
  private lost = false;
  private timer: NodeJS.Timeout | undefined;
  private lastRenewed = 0;
  /** The record last seen (holder and version) and when, by this replica's clock. */
  private observed: { key: string; at: number } | undefined;
  private busy = false;

  constructor(
    private readonly opts: {
      kubeconfig: k8s.KubeConfig;
      namespace: string;
      name: string;
      replicaId: string;
      timing: ElectionTiming;
      log: Logger;
    } & ElectorCallbacks,
  ) {
    this.api = opts.kubeconfig.makeApiClient(k8s.CoordinationV1Api);
  }

  async start(): Promise<void> {
    this.timer = setInterval(() => void this.tick(), this.opts.timing.retryMs);
    await this.tick();
  }

  isLeader(): boolean {
    return this.leading;
  }

  async leader(): Promise<string | undefined> {
    const lease = await this.read();
    return lease?.spec?.holderIdentity || undefined;
  }

  private async read(): Promise<k8s.V1Lease | undefined> {
    try {
      return await this.api.readNamespacedLease({ name: this.opts.name, namespace: this.opts.namespace });
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  }

  private spec(now: Date, previous: k8s.V1LeaseSpec | undefined): k8s.V1LeaseSpec {
    const mine = previous?.holderIdentity === this.opts.replicaId;
    return {
      holderIdentity: this.opts.replicaId,
      leaseDurationSeconds: Math.ceil(this.opts.timing.leaseMs / 1000),
      acquireTime: mine && previous?.acquireTime ? previous.acquireTime : new k8s.V1MicroTime(now.getTime()),
      renewTime: new k8s.V1MicroTime(now.getTime()),
      leaseTransitions: (previous?.leaseTransitions ?? 0) + (mine || !previous ? 0 : 1),
    };
  }

  private async tick(): Promise<void> {
    if (this.stopped || this.lost || this.busy) return;
    if (this.leading && Date.now() - this.lastRenewed > this.opts.timing.renewDeadlineMs) {
      await this.lose(`the Lease was not renewed for ${this.opts.timing.renewDeadlineMs} ms`);
      return;
    }
    this.busy = true;
    try {
      await (this.leading ? this.renew() : this.tryAcquire());
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'leader election: the Lease could not be read or written');
    } finally {
      this.busy = false;
    }
  }

  private async tryAcquire(): Promise<void> {
    const { name, namespace, replicaId } = this.opts;
    const now = new Date();
    const lease = await this.read();
    if (!lease) {
      await this.api.createNamespacedLease({ namespace, body: { metadata: { name, namespace }, spec: this.spec(now, undefined) } });
      return this.elected();
    }
    const holder = lease.spec?.holderIdentity;
    const key = `${holder ?? ''}/${lease.metadata?.resourceVersion ?? ''}`;
    if (this.observed?.key !== key) this.observed = { key, at: Date.now() };
    const expired = !holder || holder === replicaId || Date.now() - this.observed.at > this.opts.timing.leaseMs;
    if (!expired) return;
    await this.api.replaceNamespacedLease({ name, namespace, body: { metadata: { ...lease.metadata, name, namespace }, spec: this.spec(now, lease.spec) } });
    return this.elected();
  }

  private async elected(): Promise<void> {
    if (this.stopped || this.lost) return;
    this.leading = true;
    this.lastRenewed = Date.now();
    this.opts.log.info({ replica: this.opts.replicaId, lease: `${this.opts.namespace}/${this.opts.name}` }, 'elected leader: starting the controllers');
    await this.opts.onElected();
  }

  private async renew(): Promise<void> {
    const { name, namespace, replicaId } = this.opts;
    const lease = await this.read();
    if (!lease || lease.spec?.holderIdentity !== replicaId) {
      await this.lose(`the Lease is held by ${lease?.spec?.holderIdentity || 'nobody'}`);
      return;
    }
    try {
      await this.api.replaceNamespacedLease({ name, namespace, body: { metadata: lease.metadata!, spec: this.spec(new Date(), lease.spec) } });
      this.lastRenewed = Date.now();
    } catch (err) {
      if ((err as { code?: number }).code === 409) return; // raced with ourselves or another writer: the next tick reads again
      throw err;
    }
  }

  private async lose(reason: string): Promise<void> {
    if (this.lost) return;
    this.lost = true;
    if (this.timer) clearInterval(this.timer);
    if (!this.leading) return;
    this.leading = false;
    this.opts.log.error({ reason }, 'leadership lost: stopping the controllers');
    await this.opts.onLost(reason).catch((err: unknown) => this.opts.log.error({ err }, 'stopping the controllers failed'));
  }

  async stop(): Promise<void> {
    const wasLeading = this.leading;
    this.stopped = true;
    await this.lose('stopping');
    if (!wasLeading) return;
    // Released only after the controllers stopped, and only if it is still ours.
    try {
      const lease = await this.read();
      if (lease?.spec?.holderIdentity === this.opts.replicaId) {
        await this.api.replaceNamespacedLease({
          name: this.opts.name,
          namespace: this.opts.namespace,
          body: { metadata: lease.metadata!, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1 } },
        });
      }
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'could not release the Lease; it expires by itself');
    }
  }
}
