import pg from 'pg';
import type { Logger } from 'pino';
import type { Store } from '../store/store.ts';

/** The channel every committed write notifies on PostgreSQL (see Store.write). */
export const CHANGES_CHANNEL = 'kiln_changes';
/** Emitted on Store.events when another replica (or this one) committed to the change feed. */
export const REMOTE_CHANGES = 'remote-changes';

/**
 * LISTENs on a dedicated connection and wakes this replica's change-feed followers (`REMOTE_CHANGES`) whenever any
 * replica commits, instead of their polling the feed. After a reconnect it wakes them once, for what it missed.
 */
export class ChangeNotifier {
  private client: pg.Client | undefined;
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly url: string,
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    await this.connect();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client({ connectionString: this.url, application_name: 'kiln-listen', keepAlive: true });
    const again = (err?: Error) => {
      if (this.client !== client) return;
      this.client = undefined;
      client.removeAllListeners('notification');
      if (this.stopped) return;
      this.log.warn({ err: err?.message }, 'change-feed LISTEN connection lost; reconnecting');
      this.retry = setTimeout(() => void this.connect(), 1000);
      this.retry.unref();
    };
    client.on('error', again);
    client.on('end', () => again());
    client.on('notification', () => this.store.events.emit(REMOTE_CHANGES));
    try {
      await client.connect();
      await client.query(`listen ${CHANGES_CHANNEL}`);
      this.client = client;
      this.store.events.emit(REMOTE_CHANGES);
    } catch (err) {
      client.removeAllListeners();
      client.on('error', () => undefined);
      await client.end().catch(() => undefined);
      if (this.stopped) return;
      this.log.warn({ err: (err as Error).message }, 'could not LISTEN for change-feed notifications; retrying');
      this.retry = setTimeout(() => void this.connect(), 1000);
      this.retry.unref();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    const c = this.client;
    this.client = undefined;
    c?.removeAllListeners();
    c?.on('error', () => undefined);
    await c?.end().catch(() => undefined);
  }
}
