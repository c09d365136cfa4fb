import type { ApiClient } from './api-client.ts';

export interface LogEnvelope {
  timestamp: string;
  source_id?: string;
  instance_id?: string;
  tags?: Record<string, string>;
  log?: { payload?: string; type?: string };
}

interface ReadResponse {
  envelopes?: { batch?: LogEnvelope[] };
}

const PAGE = 1000;

/** `2026-12-06T06:40:01.23+0000 [APP/PROC/WEB/0] OUT hello`, as cf prints log lines. */
export function formatEnvelope(e: LogEnvelope): string {
  const ms = Number(BigInt(e.timestamp) / 1_000_000n);
  const iso = new Date(ms).toISOString(); // 2026-12-06T06:40:01.234Z
  const when = `${iso.slice(0, 22)}+0000`;
  const source = e.tags?.source_type ?? 'LOG';
  const instance = e.instance_id !== undefined && e.instance_id !== '' ? `/${e.instance_id}` : '';
  const payload = Buffer.from(e.log?.payload ?? '', 'base64').toString('utf8').replace(/\r?\n$/, '');
  return `   ${when} [${source}${instance}] ${e.log?.type ?? 'OUT'} ${payload}`;
}

/** What tells two envelopes apart within one timestamp. */
const keyOf = (e: LogEnvelope) => `${e.timestamp}\u0000${e.instance_id ?? ''}\u0000${e.tags?.source_type ?? ''}\u0000${e.log?.type ?? ''}\u0000${e.log?.payload ?? ''}`;

/**
 * Reads an app's log-cache stream the way the cf CLI follows it: repeated `read` calls with start_time at
 * the newest timestamp seen so far. start_time is inclusive, so envelopes at exactly that timestamp come
 * back once more; they are remembered and dropped, and every envelope is emitted exactly once. The cursor
 * comes from the server's own timestamps, so a client clock that differs from the server's loses nothing.
 */
export class LogFollower {
  private cursor = 0n;
  private seenAtCursor = new Set<string>();

  constructor(
    private readonly client: ApiClient,
    private readonly readUrl: string,
  ) {}

  private async read(query: Record<string, string | number>): Promise<LogEnvelope[]> {
    const res = await this.client.get<ReadResponse>(this.readUrl, { envelope_types: 'LOG', ...query });
    return res.envelopes?.batch ?? [];
  }

  /** The last `limit` envelopes, oldest first (`logs --recent`); following continues after them. */
  async recent(limit = PAGE): Promise<LogEnvelope[]> {
    const batch = (await this.read({ descending: 'true', limit, start_time: 0 })).reverse();
    this.remember(batch);
    return batch;
  }

  /** Skips what is already in the cache: following then shows only lines that arrive from now on. */
  async skipExisting(): Promise<void> {
    const newest = await this.read({ descending: 'true', limit: 1, start_time: 0 });
    if (!newest[0]) return;
    this.remember(await this.read({ start_time: newest[0].timestamp, limit: PAGE }));
  }

  /** The envelopes that arrived since the last call, oldest first, each once. */
  async poll(): Promise<LogEnvelope[]> {
    const out: LogEnvelope[] = [];
    for (let rounds = 0; rounds < 50; rounds++) {
      const batch = await this.read({ start_time: this.cursor.toString(), limit: PAGE });
      const fresh = batch.filter((e) => {
        const ts = BigInt(e.timestamp);
        return ts > this.cursor || (ts === this.cursor && !this.seenAtCursor.has(keyOf(e)));
      });
      this.remember(fresh);
      out.push(...fresh);
      if (batch.length < PAGE || fresh.length === 0) break;
    }
    return out;
  }

  private remember(batch: LogEnvelope[]): void {
    for (const e of batch) {
      const ts = BigInt(e.timestamp);
      if (ts > this.cursor) {
        this.cursor = ts;
        this.seenAtCursor = new Set();
      }
      if (ts === this.cursor) this.seenAtCursor.add(keyOf(e));
    }
  }
}
