import { EventEmitter } from 'node:events';

/** One log line as log-cache stores it: nanosecond timestamp, source (app guid), instance and CF source type. */
export interface LogEnvelope {
  /** Unix nanoseconds; bigint so ordering and `start_time` comparisons stay exact. */
  timestamp: bigint;
  sourceId: string;
  instanceId: string;
  /** APP/PROC/WEB, APP/TASK/<name>, STG, RTR, API, CELL … */
  sourceType: string;
  type: 'OUT' | 'ERR';
  payload: string;
}

export interface ReadQuery {
  startTime?: bigint | undefined;
  endTime?: bigint | undefined;
  limit: number;
  descending: boolean;
}

/**
 * Per-source ring buffers of recent log lines (what `cf logs --recent` and staging-log tailing read).
 * Bounded per source so a chatty app cannot exhaust memory; sources unused for long are dropped first.
 */
export class LogStore {
  private readonly buffers = new Map<string, LogEnvelope[]>();
  private lastNs = 0n;
  readonly events = new EventEmitter();

  constructor(private readonly perSource = 10_000, private readonly maxSources = 5_000) {
    this.events.setMaxListeners(1000);
  }

  /** Strictly increasing timestamps: clients resume from `last + 1`, so two lines in one nanosecond must differ. */
  private now(): bigint {
    const ns = BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
    this.lastNs = ns > this.lastNs ? ns : this.lastNs + 1n;
    return this.lastNs;
  }

  append(line: Omit<LogEnvelope, 'timestamp'> & { timestamp?: bigint }): LogEnvelope {
    const envelope: LogEnvelope = { ...line, timestamp: line.timestamp ?? this.now() };
    let buf = this.buffers.get(line.sourceId);
    if (!buf) {
      if (this.buffers.size >= this.maxSources) this.buffers.delete(this.buffers.keys().next().value!);
      buf = [];
      this.buffers.set(line.sourceId, buf);
    } else {
      // Re-insert so the Map's order tracks recency of use for eviction.
      this.buffers.delete(line.sourceId);
      this.buffers.set(line.sourceId, buf);
    }
    buf.push(envelope);
    if (buf.length > this.perSource) buf.splice(0, buf.length - this.perSource);
    this.events.emit('log', envelope);
    return envelope;
  }

  /** Multi-line text becomes one envelope per line, as loggregator does. */
  appendText(base: Omit<LogEnvelope, 'timestamp' | 'payload'>, text: string): void {
    for (const line of text.split(/\r?\n/)) if (line !== '') this.append({ ...base, payload: line });
  }

  read(sourceId: string, q: ReadQuery): LogEnvelope[] {
    const buf = this.buffers.get(sourceId) ?? [];
    const inRange = buf.filter(
      (e) => (q.startTime === undefined || e.timestamp >= q.startTime) && (q.endTime === undefined || e.timestamp < q.endTime),
    );
    // Log-cache returns the `limit` oldest from start_time, or with descending the `limit` newest, newest first.
    return q.descending ? inRange.slice(-q.limit).reverse() : inRange.slice(0, q.limit);
  }

  forget(sourceId: string): void {
    this.buffers.delete(sourceId);
  }
}
