import { Hono, type Context } from 'hono';
import { LogStore, type LogEnvelope } from './log-store.ts';

/**
 * The slice of the log-cache HTTP API the cf CLI uses (cf-cli-flows §7.5): `/api/v1/info` and
 * `/api/v1/read/:source_id`. The CLI parses responses with protobuf JSON rules and rejects unknown fields,
 * so envelopes carry exactly log-cache's field names.
 */
export interface LogAccess {
  /** Resolves when the bearer token may read this source's logs; throws the API's own error otherwise. */
  authorize(c: Context, sourceId: string): Promise<void>;
}

export const LOG_CACHE_VERSION = '3.0.0';
const MAX_LIMIT = 1000;
const ENVELOPE_TYPES = new Set(['LOG', 'COUNTER', 'GAUGE', 'TIMER', 'EVENT', 'ANY']);

function problem(c: Context, message: string) {
  return c.json({ error: message }, 400);
}

const NS = /^-?\d{1,20}$/;

function toJson(e: LogEnvelope) {
  return {
    timestamp: e.timestamp.toString(),
    source_id: e.sourceId,
    instance_id: e.instanceId,
    deprecated_tags: {},
    tags: { source_type: e.sourceType },
    log: { payload: Buffer.from(e.payload).toString('base64'), type: e.type },
  };
}

export function logCacheRoutes(logs: LogStore, access: LogAccess): Hono {
  const app = new Hono();
  app.get('/api/v1/info', (c) => c.json({ version: LOG_CACHE_VERSION, vm_uptime: String(Math.floor(process.uptime())) }));

  app.get('/api/v1/read/:source_id', async (c) => {
    const sourceId = c.req.param('source_id');
    await access.authorize(c, sourceId);
    const q = c.req.query();
    for (const key of ['start_time', 'end_time'] as const) {
      if (q[key] !== undefined && !NS.test(q[key]!)) return problem(c, `${key} must be a Unix timestamp in nanoseconds`);
    }
    let limit = 100;
    if (q.limit !== undefined) {
      if (!/^\d+$/.test(q.limit)) return problem(c, 'limit must be a positive integer');
      limit = Number(q.limit);
      if (limit > MAX_LIMIT) return problem(c, `limit must be ${MAX_LIMIT} or less`);
    }
    const types = c.req.queries('envelope_types') ?? [];
    for (const t of types) if (!ENVELOPE_TYPES.has(t)) return problem(c, `unknown envelope type ${t}`);
    // Only log envelopes are kept: a request for other types alone gets an empty batch.
    const wantsLogs = types.length === 0 || types.includes('LOG') || types.includes('ANY');
    const batch = wantsLogs
      ? logs.read(sourceId, {
          startTime: q.start_time !== undefined ? BigInt(q.start_time) : undefined,
          endTime: q.end_time !== undefined ? BigInt(q.end_time) : undefined,
          limit,
          descending: q.descending === 'true',
        })
      : [];
    return c.json({ envelopes: { batch: batch.map(toJson) } });
  });
  return app;
}
