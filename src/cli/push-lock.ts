import os from 'node:os';
import { CfApiError, type ApiClient } from './api-client.ts';

/** Lease of a `kiln push --lock` lock when `--lock-ttl` is not given; renewed every third of it while the push runs. */
export const PUSH_LOCK_TTL_SECONDS = 120;

/** A lock could not be taken: someone else holds the app or its space (the server's message says who, until when). */
export class LockRefused extends Error {}

interface LockResource {
  guid: string;
}

/**
 * The lock `kiln push --lock` holds around a push (a Kiln extension, /v3/locks): taken before the manifest is
 * applied, renewed by a heartbeat (PATCH) while staging and starting run, released when the push ends — also when
 * it fails. A push killed outright leaves the lock to expire after its lease.
 *
 * A first push has no app to lock yet: it locks the space while the manifest creates the app, then locks the app
 * and releases the space, so other apps of the space are held only for that moment.
 */
export class PushLock {
  private timer: NodeJS.Timeout | undefined;
  private lost: string | undefined;

  private constructor(
    private readonly client: ApiClient,
    private guid: string,
    private readonly ttlSeconds: number,
    private readonly warn: (message: string) => void,
  ) {
    this.schedule();
  }

  /** Takes the lock on the app, or on the space when the app does not exist yet. */
  static async take(
    client: ApiClient,
    target: { appGuid: string | undefined; spaceGuid: string; appName: string },
    ttlSeconds: number,
    warn: (message: string) => void,
  ): Promise<PushLock> {
    const relationship = target.appGuid ? { app: { data: { guid: target.appGuid } } } : { space: { data: { guid: target.spaceGuid } } };
    const lock = await create(client, relationship, target.appName, ttlSeconds);
    return new PushLock(client, lock.guid, ttlSeconds, warn);
  }

  /** After a first push created the app: lock the app itself and let go of the space. */
  async narrowTo(appGuid: string, appName: string): Promise<void> {
    const appLock = await create(this.client, { app: { data: { guid: appGuid } } }, appName, this.ttlSeconds);
    const spaceLock = this.guid;
    this.guid = appLock.guid;
    await this.remove(spaceLock);
  }

  /** Stops the heartbeat and deletes the lock (a lock that already expired is fine). */
  async release(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.remove(this.guid);
  }

  private schedule(): void {
    const everyMs = Math.max(250, Math.floor((this.ttlSeconds * 1000) / 3));
    this.timer = setTimeout(() => void this.renew(), everyMs);
    this.timer.unref();
  }

  private async renew(): Promise<void> {
    if (this.timer === undefined) return;
    try {
      await this.client.patch(`/v3/locks/${this.guid}`, {});
    } catch (err) {
      // A lost lease (404) is not fatal to the push, but others may now write the app: say so once.
      if (!this.lost) {
        this.lost = (err as Error).message;
        this.warn(`could not renew the push lock (${this.lost}); other clients may now change the app`);
      }
    }
    if (this.timer !== undefined) this.schedule();
  }

  private async remove(guid: string): Promise<void> {
    try {
      await this.client.request('DELETE', `/v3/locks/${guid}`);
    } catch (err) {
      if (!(err instanceof CfApiError && err.status === 404)) this.warn(`could not release the push lock: ${(err as Error).message}`);
    }
  }
}

async function create(client: ApiClient, relationships: Record<string, unknown>, appName: string, ttlSeconds: number): Promise<LockResource> {
  try {
    return await client.post<LockResource>('/v3/locks', {
      name: 'kiln-push',
      reason: `kiln push of ${appName} from ${os.hostname()}`,
      ttl_in_seconds: ttlSeconds,
      relationships,
    });
  } catch (err) {
    if (err instanceof CfApiError && err.status === 422) throw new LockRefused(err.errors[0]?.detail ?? err.message);
    if (err instanceof CfApiError && err.endpointMissing) throw new LockRefused('this server does not support locks (--lock needs Kiln)');
    throw err;
  }
}
