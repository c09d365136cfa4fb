/**
 * Router access records and their gorouter-style text form, which is what `cf logs` shows as RTR lines:
 *
 *   app.example.com - [2024-05-01T10:00:00.123+0000] "GET /path HTTP/1.1" 200 0 12 "-" "curl/8.0" "127.0.0.1:50000"
 *   "127.0.0.1:61001" x_forwarded_for:"127.0.0.1" x_forwarded_proto:"http" vcap_request_id:"…" response_time:0.003
 *   app_id:"…" app_index:"0" instance_id:"…"
 */

export interface AccessLogEntry {
  /** Epoch ms when the router received the request. */
  startedAt: number;
  host: string;
  method: string;
  /** Request target as received (path and query). */
  url: string;
  httpVersion: string;
  status: number;
  bytesIn: number;
  bytesOut: number;
  referer: string | undefined;
  userAgent: string | undefined;
  /** Client address, `ip:port`. */
  remoteAddr: string;
  /** Backend that produced the response (`host:port`), undefined when none did. */
  backendAddr: string | undefined;
  xForwardedFor: string;
  xForwardedProto: string;
  requestId: string;
  responseTimeSeconds: number;
  /** Set when the request matched a route with at least one backend chosen. */
  appGuid: string | undefined;
  appIndex: number | undefined;
  instanceId: string | undefined;
  /** gorouter's X-Cf-Routererror value when the router itself answered (unknown_route, no_endpoints…). */
  routerError: string | undefined;
}

export type AccessLogger = (entry: AccessLogEntry) => void;

/** Where RTR lines go: the log store's append (src/logs/log-store.ts), kept structural so router/ imports no logs/. */
export interface RtrLineSink {
  append(line: { sourceId: string; sourceType: string; instanceId: string; type: 'OUT'; payload: string }): unknown;
}

/**
 * The access logger Kiln runs with: every request that reached an app becomes an RTR line in that app's log buffer
 * (what `cf logs` shows). The server and bench/router.ts both use this, so the bench measures what Kiln does.
 */
export function rtrAccessLogger(logs: RtrLineSink): AccessLogger {
  return (entry) => {
    if (entry.appGuid) {
      logs.append({ sourceId: entry.appGuid, sourceType: 'RTR', instanceId: String(entry.appIndex ?? 0), type: 'OUT', payload: formatAccessLog(entry) });
    }
  };
}

function two(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** The date-and-seconds part of the last timestamp formatted, which every line within that second shares. */
let cachedSecond = Number.NaN;
let cachedPrefix = '';

/** gorouter's timestamp: `2006-01-02T15:04:05.000+0000` in UTC. */
export function formatAccessTime(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== cachedSecond) {
    const d = new Date(second * 1000);
    cachedPrefix =
      `${d.getUTCFullYear()}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())}T` +
      `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}.`;
    cachedSecond = second;
  }
  const millis = Math.floor(ms) - second * 1000;
  const frac = millis < 10 ? `00${millis}` : millis < 100 ? `0${millis}` : String(millis);
  return `${cachedPrefix}${frac}+0000`;
}

const NEEDS_ESCAPE = /["\\]/;

/** Quoted field, `"-"` when empty; embedded quotes are escaped so a line always parses. */
function q(value: string | undefined): string {
  if (value === undefined || value === '') return '"-"';
  // Most fields have nothing to escape; a test is far cheaper than two replaces on every field of every line.
  if (!NEEDS_ESCAPE.test(value)) return `"${value}"`;
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}


/** One RTR line for an access record (no trailing newline). */
export function formatAccessLog(e: AccessLogEntry): string {
  return (
    `${e.host || '-'} - [${formatAccessTime(e.startedAt)}] ` +
    `${q(`${e.method} ${e.url} HTTP/${e.httpVersion}`)} ${e.status} ${e.bytesIn} ${e.bytesOut} ` +
    `${q(e.referer)} ${q(e.userAgent)} ${q(e.remoteAddr)} ${q(e.backendAddr)} ` +
    `x_forwarded_for:${q(e.xForwardedFor)} x_forwarded_proto:${q(e.xForwardedProto)} ` +
    `vcap_request_id:${q(e.requestId)} response_time:${e.responseTimeSeconds.toFixed(6)} ` +
    `app_id:${q(e.appGuid)} app_index:${q(e.appIndex === undefined ? undefined : String(e.appIndex))} ` +
    `instance_id:${q(e.instanceId)}`
  );
}
