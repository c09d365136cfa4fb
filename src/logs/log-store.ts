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

/** What a line carries besides its timestamp and payload; few distinct ones per segment. */
type Tag = Omit<LogEnvelope, 'timestamp' | 'payload'>;

/**
 * A source's first segment is small (most sources — an app's staging or API lines — have few lines); each next one
 * is four times larger, up to these. A line longer than a segment gets a segment of its own size.
 */
const FIRST_SEGMENT_LINES = 4;
const FIRST_SEGMENT_BYTES = 512;
const MAX_SEGMENT_LINES = 512;
const MAX_SEGMENT_BYTES = 64 * 1024;

/**
 * A run of consecutive lines of one source: payloads as UTF-8 in one buffer, timestamps and tags in typed arrays.
 * Lines leave from the front (`first`) as the source's bound is reached; the segment goes when all have left.
 */
class Segment {
  readonly bytes: Buffer;
  /** End offset in `bytes` of each line (a line starts where the previous ends). */
  readonly ends: Uint32Array;
  readonly stamps: BigInt64Array;
  readonly tagOf: Uint16Array;
  readonly tags: Tag[] = [];
  /** Lines written. */
  count = 0;
  /** The first line still kept. */
  first = 0;

  constructor(
    readonly capacity: number,
    size: number,
  ) {
    this.bytes = Buffer.allocUnsafeSlow(size);
    this.ends = new Uint32Array(capacity);
    this.stamps = new BigInt64Array(capacity);
    this.tagOf = new Uint16Array(capacity);
  }

  /** Empties the segment for reuse. */
  reset(): void {
    this.count = 0;
    this.first = 0;
    this.tags.length = 0;
  }

  get used(): number {
    return this.count === 0 ? 0 : this.ends[this.count - 1]!;
  }

  /** Appends a line if it fits; false when the segment is full. */
  tryAppend(timestamp: bigint, tag: Tag, payload: string): boolean {
    if (this.count === this.capacity) return false;
    const used = this.used;
    const room = this.bytes.length - used;
    // A UTF-16 code unit is at most 3 bytes of UTF-8: below that bound no exact length is needed.
    if (payload.length * 3 > room && Buffer.byteLength(payload) > room) return false;
    const written = payload.length === 0 ? 0 : this.bytes.write(payload, used, 'utf8');
    const i = this.count++;
    this.ends[i] = used + written;
    this.stamps[i] = timestamp;
    this.tagOf[i] = this.tagIndex(tag);
    return true;
  }

  private tagIndex(tag: Tag): number {
    // Lines of a source mostly repeat the last tag or one of a handful; search from the newest.
    for (let i = this.tags.length - 1; i >= 0; i--) {
      const t = this.tags[i]!;
      if (t.instanceId === tag.instanceId && t.sourceType === tag.sourceType && t.type === tag.type) return i;
    }
    this.tags.push({ sourceId: tag.sourceId, instanceId: tag.instanceId, sourceType: tag.sourceType, type: tag.type });
    return this.tags.length - 1;
  }

  envelope(i: number): LogEnvelope {
    const tag = this.tags[this.tagOf[i]!]!;
    const start = i === 0 ? 0 : this.ends[i - 1]!;
    return {
      sourceId: tag.sourceId,
      instanceId: tag.instanceId,
      sourceType: tag.sourceType,
      type: tag.type,
      payload: this.bytes.toString('utf8', start, this.ends[i]!),
      timestamp: this.stamps[i]!,
    };
  }
}

/** The kept lines of one source, oldest segment first. */
class SourceLines {
  readonly segments: Segment[] = [];
  size = 0;
  /** The store's append count when a line last came for this source (least recently used goes first). */
  lastUsed = 0;

  private nextLines = FIRST_SEGMENT_LINES;
  private nextBytes = FIRST_SEGMENT_BYTES;
  /**
   * A full-size segment whose lines have all left, kept to be written again: a busy source then cycles through the
   * same buffers instead of allocating new ones, whose external memory would drive V8 into frequent mark-compacts.
   */
  private spare: Segment | undefined;

  append(timestamp: bigint, tag: Tag, payload: string, limit: number): void {
    const last = this.segments[this.segments.length - 1];
    if (!last || !last.tryAppend(timestamp, tag, payload)) {
      const seg = this.nextSegment(Buffer.byteLength(payload));
      seg.tryAppend(timestamp, tag, payload);
      this.segments.push(seg);
    }
    this.size++;
    while (this.size > limit) {
      let oldest = this.segments[0]!;
      while (oldest.first === oldest.count) {
        this.retire(this.segments.shift()!);
        oldest = this.segments[0]!;
      }
      oldest.first++;
      this.size--;
    }
    // A segment whose lines have all left goes (the one being written stays).
    while (this.segments.length > 1 && this.segments[0]!.first === this.segments[0]!.count) this.retire(this.segments.shift()!);
  }

  private nextSegment(lineBytes: number): Segment {
    const spare = this.spare;
    if (spare && spare.bytes.length >= lineBytes) {
      this.spare = undefined;
      spare.reset();
      return spare;
    }
    const seg = new Segment(this.nextLines, Math.max(this.nextBytes, lineBytes));
    this.nextLines = Math.min(MAX_SEGMENT_LINES, this.nextLines * 4);
    this.nextBytes = Math.min(MAX_SEGMENT_BYTES, this.nextBytes * 4);
    return seg;
  }

  private retire(seg: Segment): void {
    // Only ordinary full-size segments are kept: not a small first one, nor one made for a single huge line.
    if (seg.capacity === MAX_SEGMENT_LINES && seg.bytes.length === MAX_SEGMENT_BYTES) this.spare = seg;
  }
}

/**
 * Per-source buffers of recent log lines (what `cf logs --recent` and staging-log tailing read), bounded per source
 * so a chatty app cannot exhaust memory; when there are too many sources, the least recently used is dropped.
 *
 * Lines are kept as bytes, not as envelope objects. The router appends an RTR line for every request, and a line
 * lives until 10,000 newer ones push it out — long enough for V8 to copy it through the young generation and promote
 * it, only for it to die in the old one. Measured with bench/router.ts (wrk -c50): with envelopes in arrays (and a
 * Map re-insert per line for recency, and `splice` to bound the array) the router served half the requests it does
 * without access lines, with 10–15 ms scavenges; kept in buffers, the lines cost the garbage collector almost
 * nothing. Envelopes are built when read. Nothing here survives a restart (log-cache is in-memory too).
 */
export class LogStore {
  private readonly sources = new Map<string, SourceLines>();
  private lastNs = 0n;
  private appends = 0;
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
    // Fields named one by one: `{ ...line, timestamp }` took ~2 µs per line in V8 11 (node 20), ~200× this.
    const envelope: LogEnvelope = {
      timestamp: line.timestamp ?? this.now(),
      sourceId: line.sourceId,
      instanceId: line.instanceId,
      sourceType: line.sourceType,
      type: line.type,
      payload: line.payload,
    };
    let source = this.sources.get(line.sourceId);
    if (!source) {
      if (this.sources.size >= this.maxSources) this.evictOne();
      source = new SourceLines();
      this.sources.set(line.sourceId, source);
    }
    source.lastUsed = ++this.appends;
    source.append(envelope.timestamp, envelope, envelope.payload, this.perSource);
    if (this.events.listenerCount('log') > 0) this.events.emit('log', envelope);
    return envelope;
  }

  /**
   * Drops the source that went longest without a line. A scan over the sources, but only when a new source comes
   * while the store is full, rather than re-inserting into a Map on every line to keep it in recency order.
   */
  private evictOne(): void {
    let victim: string | undefined;
    let oldest = Infinity;
    for (const [id, source] of this.sources) {
      if (source.lastUsed < oldest) {
        oldest = source.lastUsed;
        victim = id;
      }
    }
    if (victim !== undefined) this.sources.delete(victim);
  }

  /** Multi-line text becomes one envelope per line, as loggregator does. */
  appendText(base: Omit<LogEnvelope, 'timestamp' | 'payload'>, text: string): void {
    for (const line of text.split(/\r?\n/)) {
      if (line !== '') this.append({ sourceId: base.sourceId, instanceId: base.instanceId, sourceType: base.sourceType, type: base.type, payload: line });
    }
  }

  read(sourceId: string, q: ReadQuery): LogEnvelope[] {
    const source = this.sources.get(sourceId);
    if (!source || q.limit <= 0) return [];
    // Lines in the time range, as (segment, line) pairs in order; envelopes only for those returned.
    const segs: Segment[] = [];
    const lines: number[] = [];
    for (const seg of source.segments) {
      for (let i = seg.first; i < seg.count; i++) {
        const ts = seg.stamps[i]!;
        if ((q.startTime !== undefined && ts < q.startTime) || (q.endTime !== undefined && ts >= q.endTime)) continue;
        segs.push(seg);
        lines.push(i);
      }
    }
    // Log-cache returns the `limit` oldest from start_time, or with descending the `limit` newest, newest first.
    const out: LogEnvelope[] = [];
    if (q.descending) {
      for (let k = lines.length - 1; k >= 0 && out.length < q.limit; k--) out.push(segs[k]!.envelope(lines[k]!));
    } else {
      for (let k = 0; k < lines.length && out.length < q.limit; k++) out.push(segs[k]!.envelope(lines[k]!));
    }
    return out;
  }

  forget(sourceId: string): void {
    this.sources.delete(sourceId);
  }
}
