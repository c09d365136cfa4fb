import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';

/** How Kiln reaches one broker (credentials decrypted for the call only). */
export interface BrokerConnection {
  url: string;
  username: string;
  password: string;
}

export interface BrokerCallOptions {
  body?: unknown;
  query?: Record<string, string | undefined>;
  /** The acting user's guid, sent as X-Broker-API-Originating-Identity. */
  userGuid?: string | null;
  timeoutMs: number;
}

export interface BrokerResponse {
  status: number;
  /** Parsed JSON body, or undefined when the body was not JSON. */
  json: unknown;
  text: string;
  /** Retry-After in seconds, when the broker sent one. */
  retryAfterSeconds: number | undefined;
}

/**
 * A failure to talk to a broker, shaped like Cloud Controller's `HttpResponseError`s: `title` is `CF-<class>` as
 * V3ErrorHasher renders them (code 10001 unless the error has a catalogue entry), `orphan` says whether the
 * broker may have created something anyway (timeouts, 5xx, malformed answers — never 4xx).
 */
export class BrokerError extends Error {
  constructor(
    readonly title: string,
    readonly detail: string,
    readonly orphan: boolean,
    readonly status?: number,
    readonly code = 10001,
  ) {
    super(detail);
    this.name = 'BrokerError';
  }
}

/** The OSBAPI version Kiln speaks (Cloud Controller's config `osbapi_version`). */
export const OSBAPI_VERSION = '2.15';

export const statusText = (status: number) => `${status} ${STATUS_CODES[status] ?? ''}`.trim();

/**
 * One request to a broker, with the headers Cloud Controller sends (`http_client.rb`): forced Basic auth,
 * X-Broker-API-Version, X-Broker-API-Originating-Identity (`cloudfoundry base64({"user_id"})`),
 * X-Broker-API-Request-Identity. JSON bodies only on PUT/PATCH; DELETE carries its parameters in the query.
 * Network errors and timeouts throw BrokerError; every HTTP answer is returned for the caller to judge.
 */
export async function callBroker(conn: BrokerConnection, method: string, path: string, opts: BrokerCallOptions): Promise<BrokerResponse> {
  const url = new URL(conn.url.replace(/\/+$/, '') + path);
  for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
  const headers: Record<string, string> = {
    Authorization: `Basic ${Buffer.from(`${conn.username}:${conn.password}`).toString('base64')}`,
    'X-Broker-API-Version': OSBAPI_VERSION,
    'X-Broker-API-Request-Identity': randomUUID(),
    'X-Vcap-Request-Id': randomUUID(),
    Accept: 'application/json',
  };
  if (opts.userGuid) {
    headers['X-Broker-API-Originating-Identity'] = `cloudfoundry ${Buffer.from(JSON.stringify({ user_id: opts.userGuid })).toString('base64')}`;
  }
  let body: string | undefined;
  if (opts.body !== undefined && (method === 'PUT' || method === 'PATCH')) {
    body = JSON.stringify(opts.body);
    headers['Content-Type'] = 'application/json';
  }
  let res: Response;
  let text: string;
  try {
    res = await fetch(url, { method, headers, body, signal: AbortSignal.timeout(opts.timeoutMs), redirect: 'manual' });
    text = await res.text();
  } catch (err) {
    const name = (err as Error).name;
    if (name === 'TimeoutError' || name === 'AbortError') {
      throw new BrokerError('CF-ServiceBrokerApiTimeout', 'The request to the service broker timed out', true);
    }
    throw new BrokerError('CF-ServiceBrokerApiUnreachable', 'The service broker could not be reached', false);
  }
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  const ra = res.headers.get('retry-after');
  let retryAfterSeconds: number | undefined;
  if (ra) {
    const n = Number(ra);
    retryAfterSeconds = Number.isFinite(n) ? n : Math.max(0, (Date.parse(ra) - Date.now()) / 1000) || undefined;
  }
  return { status: res.status, json, text, retryAfterSeconds };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The error Cloud Controller raises for an answer it does not accept (`response_parser.rb`): 401 → authentication
 * failed; 422 with a known `error` → its specific error; another 4xx → rejected (no orphan mitigation); 5xx or an
 * unexpected status → bad response (orphan mitigation). A `description` in the body becomes "Service broker error: …".
 */
export function unexpectedAnswer(res: BrokerResponse): BrokerError {
  const description = isObject(res.json) && typeof res.json.description === 'string' ? res.json.description : undefined;
  if (res.status === 401) {
    return new BrokerError('CF-ServiceBrokerApiAuthenticationFailed', 'Authentication failed for the service broker API. Double-check that the username and password are correct', false, 401);
  }
  if (res.status === 422 && isObject(res.json)) {
    switch (res.json.error) {
      case 'AsyncRequired':
        return new BrokerError('CF-AsyncRequired', 'This service plan requires client support for asynchronous service operations.', false, 422);
      case 'ConcurrencyError':
        return new BrokerError('CF-ConcurrencyError', 'The service broker could not perform this operation in parallel with other running operations', false, 422);
      case 'RequiresApp':
        return new BrokerError('CF-RequiresApp', 'This service supports generation of credentials through binding an application only.', false, 422);
      case 'MaintenanceInfoConflict':
        return new BrokerError('CF-MaintenanceInfoConflict', 'The service broker did not accept the maintenance_info', false, 422);
      default:
        break;
    }
  }
  const withBody = `${statusText(res.status)}, Body: ${res.text}`;
  if (res.status >= 400 && res.status < 500) {
    return new BrokerError('CF-ServiceBrokerRequestRejected', description !== undefined ? `Service broker error: ${description}` : `The service broker rejected the request. Status Code: ${withBody}`, res.status === 422, res.status);
  }
  return new BrokerError('CF-ServiceBrokerBadResponse', description !== undefined ? `Service broker error: ${description}` : `The service broker returned an invalid response. Status Code: ${withBody}`, true, res.status);
}

/** A 2xx answer whose body is not what OSBAPI promises (a malformed answer: orphan mitigation unless status 200). */
export function malformed(res: BrokerResponse, what: string): BrokerError {
  return new BrokerError('CF-ServiceBrokerResponseMalformed', `The service broker returned an invalid response: ${what}. Status Code: ${statusText(res.status)}, Body: ${res.text}`, res.status !== 200, res.status);
}
