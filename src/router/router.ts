/**
 * The local HTTP router: a node `(req, res)` handler that proxies a request whose Host (+ path) matches a route to
 * one of the route's running instances, gorouter-style.
 *
 * - Backends are picked round robin; a connection failure before any response (refused, reset of a stale
 *   keep-alive socket…) is retried on another instance, up to `maxAttempts` in all, provided the request body
 *   seen so far is still held in memory (bodies up to `retryBufferBytes` are kept while streaming).
 * - Bodies stream both ways with backpressure; nothing is buffered beyond the retry window.
 * - The router answers itself with gorouter's status codes and `X-Cf-Routererror` values: 404 unknown_route
 *   (also for a route whose last instance went away: gorouter drops empty pools), 503 no_endpoints (a pool
 *   that had instances but none could be picked), 502 endpoint_failure.
 * - A backend that sends no response headers within `responseTimeoutMs` (gorouter's request_timeout_in_seconds)
 *   is cut off and the client gets 502 endpoint_failure; such a request is not retried, the backend may have
 *   acted on it.
 * - Routes on domains that enforce route policies (route.access) admit only callers identified by a valid
 *   instance certificate on the mTLS listener whose app, space or org matches a policy, as gorouter's mTLS
 *   handlers do: 421 on a connection that did not do mutual TLS (mtls_sni_check), 403 without a valid identity,
 *   outside the domain's route_policies_scope or without a matching policy (mtls_pre_auth, mtls_scope_auth,
 *   mtls_route_policies_auth). gorouter writes these without an
 *   X-Cf-Routererror header, and so does Kiln. On the mTLS listener the verified client certificate is passed
 *   to the app in X-Forwarded-Client-Cert (base64 DER, gorouter's sanitize_set); a client's own copy is dropped.
 * - `drain(instanceId)` takes an instance out of every route and resolves once its in-flight requests are done,
 *   so callers can stop it without cutting a request (what rolling deployments rely on).
 */
import { FORWARDED_URL, forwardedUrlOf, forwardToRouteService, PROXY_METADATA, PROXY_SIGNATURE, RouteServiceSigner } from './route-services.ts';
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { AccessLogEntry, AccessLogger } from './access-log.ts';
import { callerIdentityOf, matchingSource, type CallerIdentity } from '../identity/caller-identity.ts';
import { RouteTable, normalizeHost, type Backend, type Route, type RouteAccess } from './route-table.ts';
import { BackendPool, type BackendConnection, type BackendError, type ResponseSink } from './backend-pool.ts';

export interface RouterOptions {
  table?: RouteTable;
  /** Called once per request (also for 404/502/503 and upgrades) after the response is done. */
  onAccess?: AccessLogger;
  /** Attempts per request, counting the first (default 3). */
  maxAttempts?: number;
  /** Request bytes kept in memory so a failed attempt can be replayed on another backend (default 64 KiB). */
  retryBufferBytes?: number;
  /** drain() gives up waiting for in-flight requests after this long (default 30 s). */
  drainTimeoutMs?: number;
  /** How long an attempt may wait for the backend's response headers (default 900 s, as gorouter). */
  responseTimeoutMs?: number;
  /** Keep-alive connections to backends; the router makes its own by default. */
  pool?: BackendPool;
}

/**
 * What the proxying code needs of a request: node's `http.IncomingMessage` has it, and so does the front door's
 * fast path, which parses request heads itself (fast-path.ts).
 */
export interface ProxyRequest {
  method?: string | undefined;
  url?: string | undefined;
  httpVersion: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  socket: Socket;
  complete: boolean;
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
  pause(): unknown;
  resume(): unknown;
  isPaused(): boolean;
}

/** What the proxying code needs of a response: node's `http.ServerResponse`, or the fast path's own. */
export interface ProxyResponse {
  readonly headersSent: boolean;
  statusCode: number;
  readonly writableEnded: boolean;
  readonly writableFinished: boolean;
  readonly destroyed: boolean;
  writeHead(status: number, message: string | undefined, headers: string[]): unknown;
  writeHead(status: number, headers: Record<string, string | number>): unknown;
  write(chunk: Buffer): boolean;
  end(chunk?: Buffer): unknown;
  destroy(): unknown;
  on(event: 'close', listener: () => void): unknown;
  once(event: 'drain', listener: () => void): unknown;
}

export interface DrainOptions {
  timeoutMs?: number;
}

/** Whether two absolute URLs name the same host and path (the scheme may differ behind a TLS-terminating proxy). */
const sameTarget = (a: string, b: string) => a.replace(/^https?:/, '') === b.replace(/^https?:/, '');

/** Headers that describe one connection and must not be forwarded (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  // The router already answered "100 Continue" to the client (node's default); the backend must not wait for one.
  'expect',
]);

/** Failures that prove the backend never saw the request. */
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN']);

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

interface ErrnoLike {
  code?: string;
}

function connectionTokens(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  const joined = Array.isArray(value) ? value.join(',') : value;
  let tokens: Set<string> | undefined;
  for (const raw of joined.split(',')) {
    const t = raw.trim().toLowerCase();
    if (t === '' || t === 'close' || t === 'keep-alive') continue;
    (tokens ??= new Set()).add(t);
  }
  return tokens;
}

/** Request headers the router sets itself; incoming copies are replaced, not duplicated. */
const ROUTER_SET = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-vcap-request-id', 'x-request-start']);
/** On the mTLS listener the router also owns X-Forwarded-Client-Cert. */
const ROUTER_SET_MTLS = new Set([...ROUTER_SET, 'x-forwarded-client-cert']);

/** Why a route policy check refused a request: the status and a human-readable reason. */
interface Denial {
  status: 403 | 421;
  reason: string;
}

interface VerifiedPeer {
  /** The identity the certificate names, if any. */
  caller: CallerIdentity | undefined;
  /** X-Forwarded-Client-Cert value: the certificate, base64 DER. */
  xfcc: string;
}

const NOT_TLS = Symbol('not TLS');
/** A connection's client certificate is fixed for its life: read once per socket, not per request. */
const peers = new WeakMap<object, VerifiedPeer | undefined>();

/** The client certificate the TLS layer verified against Kiln's CA, undefined without one, NOT_TLS on plain HTTP. */
function verifiedPeerOf(socket: Partial<TLSSocket>): VerifiedPeer | undefined | typeof NOT_TLS {
  if (!socket.encrypted || typeof socket.getPeerCertificate !== 'function') return NOT_TLS;
  if (peers.has(socket)) return peers.get(socket);
  let peer: VerifiedPeer | undefined;
  if (socket.authorized) {
    const cert = socket.getPeerCertificate();
    if (cert?.raw) peer = { caller: callerIdentityOf(cert.subject?.OU), xfcc: cert.raw.toString('base64') };
  }
  peers.set(socket, peer);
  return peer;
}

/**
 * gorouter's mtls_scope_auth. gorouter compares the selected endpoint's space and org; Kiln compares the route's
 * owning space and org, which differ from the endpoint's only for a route shared into other spaces.
 */
function scopeDenial(access: RouteAccess, caller: CallerIdentity): string | undefined {
  switch (access.scope ?? 'any') {
    case 'any':
      return undefined;
    case 'org':
      return caller.organizationGuid === access.organizationGuid
        ? undefined
        : `caller org ${caller.organizationGuid ?? ''} does not match selected backend org ${access.organizationGuid ?? ''}`;
    case 'space':
      return caller.spaceGuid === access.spaceGuid
        ? undefined
        : `caller space ${caller.spaceGuid ?? ''} does not match selected backend space ${access.spaceGuid ?? ''}`;
    default:
      return `unknown route policy scope "${access.scope}"`;
  }
}

/**
 * The route policy check of one request to a route with `access` (gorouter: mtls_sni_check, mtls_pre_auth and
 * mtls_route_policies_auth, in that order). `socket.authorized` means the TLS layer verified the chain against
 * Kiln's CA and its validity period.
 */
export function routePolicyDenial(socket: Partial<TLSSocket>, access: RouteAccess): Denial | undefined {
  const peer = verifiedPeerOf(socket);
  if (peer === NOT_TLS) {
    return { status: 421, reason: 'route requires mutual TLS: call it on the router mTLS port with an instance identity certificate' };
  }
  const caller = peer?.caller;
  if (!caller) return { status: 403, reason: 'certificate does not contain CF identity OU fields' };
  const scope = scopeDenial(access, caller);
  if (scope) return { status: 403, reason: scope };
  if (access.sources.length === 0) return { status: 403, reason: 'route has no route policies configured' };
  if (matchingSource(access.sources, caller) === undefined) return { status: 403, reason: `caller app ${caller.appGuid} not in route_policies` };
  return undefined;
}

/**
 * Copies end-to-end headers from a raw header list (`[name, value, name, value…]`, original case kept). The
 * flat form lets node write the head without per-header validation, which is a measurable share of proxy CPU.
 */
export function forwardableRawHeaders(raw: readonly string[], connection: string | string[] | undefined, drop?: ReadonlySet<string>): string[] {
  const extra = connectionTokens(connection);
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || extra?.has(lower) || drop?.has(lower)) continue;
    out.push(name, raw[i + 1]!);
  }
  return out;
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function hasRequestBody(req: ProxyRequest): boolean {
  const te = req.headers['transfer-encoding'];
  if (te !== undefined) return true;
  const cl = req.headers['content-length'];
  return cl !== undefined && cl !== '0';
}

/** Per-request values that do not change between attempts. */
interface RequestContext {
  startedAt: number;
  hostHeader: string;
  host: string;
  requestId: string;
  remoteAddr: string;
  xForwardedFor: string;
  xForwardedProto: string;
  /** Flat raw header list for the backend request. */
  headers: string[];
}

export class Router {
  readonly table: RouteTable;
  private readonly onAccess: AccessLogger | undefined;
  private readonly maxAttempts: number;
  private readonly retryBufferBytes: number;
  private readonly drainTimeoutMs: number;
  private readonly responseTimeoutMs: number;
  private readonly pool: BackendPool;
  private readonly ownsPool: boolean;
  private readonly inflight = new Map<string, number>();
  /** Signs and checks the round trip through route services. */
  readonly routeServices = new RouteServiceSigner();
  private readonly drainWaiters = new Map<string, Set<() => void>>();
  /** What an Exchange needs of its router; built once so the per-request path allocates no closures for it. */
  private readonly internals: RouterInternals;

  constructor(opts: RouterOptions = {}) {
    this.table = opts.table ?? new RouteTable();
    this.onAccess = opts.onAccess;
    this.maxAttempts = Math.max(1, opts.maxAttempts ?? 3);
    this.retryBufferBytes = opts.retryBufferBytes ?? 64 * 1024;
    this.drainTimeoutMs = opts.drainTimeoutMs ?? 30_000;
    this.responseTimeoutMs = opts.responseTimeoutMs ?? 900_000;
    this.ownsPool = opts.pool === undefined;
    this.pool = opts.pool ?? new BackendPool();
    this.internals = {
      pool: this.pool,
      maxAttempts: this.maxAttempts,
      retryBufferBytes: this.retryBufferBytes,
      responseTimeoutMs: this.responseTimeoutMs,
      watch: (exchange) => this.watch(exchange),
      unwatch: (exchange) => this.waiting.remove(exchange),
      acquire: (id) => this.acquire(id),
      release: (id) => this.release(id),
      log: (ctx, req, status, bytesIn, bytesOut, backend, routerError) =>
        this.log(ctx, req, status, bytesIn, bytesOut, backend, routerError),
      reject: (req, res, ctx, status, routerError, body, bytesIn, backend) =>
        this.reject(req, res, ctx, status, routerError, body, bytesIn, backend),
    };
  }

  /** True when the request would be handled by a route (used by the front door to split API and app traffic). */
  matches(hostHeader: string | undefined): boolean {
    return hostHeader !== undefined && this.table.hasHost(hostHeader);
  }

  /** Requests currently being served by an instance. */
  inFlight(instanceId: string): number {
    return this.inflight.get(instanceId) ?? 0;
  }

  /**
   * Removes the instance from every route now and resolves when its in-flight requests (and upgraded
   * connections) have finished, or after the timeout — whichever comes first.
   */
  drain(instanceId: string, opts: DrainOptions = {}): Promise<void> {
    this.table.removeBackend(instanceId);
    if (this.inFlight(instanceId) === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let waiters = this.drainWaiters.get(instanceId);
      if (!waiters) this.drainWaiters.set(instanceId, (waiters = new Set()));
      const set = waiters;
      const done = (): void => {
        clearTimeout(timer);
        set.delete(done);
        if (set.size === 0 && this.drainWaiters.get(instanceId) === set) this.drainWaiters.delete(instanceId);
        resolve();
      };
      const timer = setTimeout(done, opts.timeoutMs ?? this.drainTimeoutMs);
      timer.unref();
      set.add(done);
    });
  }

  /** Closes idle backend connections (only those of the router's own pool). */
  close(): void {
    if (this.ownsPool) this.pool.close();
  }

  /**
   * Exchanges waiting for response headers, checked by one interval rather than a timer per request. The
   * timeout fires between responseTimeoutMs and a quarter of it (at most a second) later.
   */
  private readonly waiting = new WaitList();
  private sweeper: NodeJS.Timeout | undefined;

  private watch(exchange: Exchange): void {
    this.waiting.add(exchange);
    if (this.sweeper) return;
    const every = Math.max(10, Math.min(1_000, this.responseTimeoutMs / 4));
    this.sweeper = setInterval(() => {
      for (const ex of this.waiting.takeExpired(Date.now())) ex.timedOut();
      if (this.waiting.size === 0) {
        clearInterval(this.sweeper);
        this.sweeper = undefined;
      }
    }, every);
    this.sweeper.unref();
  }

  private acquire(instanceId: string): void {
    this.inflight.set(instanceId, (this.inflight.get(instanceId) ?? 0) + 1);
  }

  private release(instanceId: string): void {
    const n = (this.inflight.get(instanceId) ?? 1) - 1;
    if (n > 0) {
      this.inflight.set(instanceId, n);
      return;
    }
    this.inflight.delete(instanceId);
    const waiters = this.drainWaiters.get(instanceId);
    if (waiters) for (const done of [...waiters]) done();
  }

  private context(req: ProxyRequest, keepUpgrade: boolean): RequestContext {
    const startedAt = Date.now();
    const hostHeader = req.headers.host ?? '';
    const remoteIp = req.socket.remoteAddress ?? '';
    const remoteAddr = `${remoteIp}:${req.socket.remotePort ?? 0}`;
    const incomingXff = firstHeader(req.headers['x-forwarded-for']);
    const xForwardedFor = incomingXff ? `${incomingXff}, ${remoteIp}` : remoteIp;
    const xForwardedProto =
      firstHeader(req.headers['x-forwarded-proto']) ?? ((req.socket as Partial<TLSSocket>).encrypted ? 'https' : 'http');
    const incomingId = firstHeader(req.headers['x-vcap-request-id']);
    const requestId = incomingId !== undefined && REQUEST_ID.test(incomingId) ? incomingId : randomUUID();
    const peer = verifiedPeerOf(req.socket as Partial<TLSSocket>);
    const headers = forwardableRawHeaders(req.rawHeaders, req.headers.connection, peer === NOT_TLS ? ROUTER_SET : ROUTER_SET_MTLS);
    if (keepUpgrade && req.headers.upgrade !== undefined) headers.push('Connection', 'Upgrade', 'Upgrade', req.headers.upgrade);
    if (peer !== NOT_TLS && peer) headers.push('X-Forwarded-Client-Cert', peer.xfcc);
    headers.push(
      'X-Forwarded-For',
      xForwardedFor,
      'X-Forwarded-Proto',
      xForwardedProto,
      'X-Forwarded-Host',
      firstHeader(req.headers['x-forwarded-host']) ?? hostHeader,
      'X-Vcap-Request-Id',
      requestId,
      'X-Request-Start',
      String(startedAt),
    );
    return { startedAt, hostHeader, host: normalizeHost(hostHeader), requestId, remoteAddr, xForwardedFor, xForwardedProto, headers };
  }

  private log(
    ctx: RequestContext,
    req: ProxyRequest,
    status: number,
    bytesIn: number,
    bytesOut: number,
    backend: Backend | undefined,
    routerError: string | undefined,
  ): void {
    if (!this.onAccess) return;
    const entry: AccessLogEntry = {
      startedAt: ctx.startedAt,
      host: ctx.host,
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      httpVersion: req.httpVersion,
      status,
      bytesIn,
      bytesOut,
      referer: firstHeader(req.headers.referer),
      userAgent: req.headers['user-agent'],
      remoteAddr: ctx.remoteAddr,
      backendAddr: backend ? `${backend.host}:${backend.port}` : undefined,
      xForwardedFor: ctx.xForwardedFor,
      xForwardedProto: ctx.xForwardedProto,
      requestId: ctx.requestId,
      responseTimeSeconds: (Date.now() - ctx.startedAt) / 1000,
      appGuid: backend?.appGuid,
      appIndex: backend?.index,
      instanceId: backend?.instanceId,
      routerError,
    };
    try {
      this.onAccess(entry);
    } catch {
      // A failing log sink must never break proxying.
    }
  }

  /** The node request listener. */
  readonly handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const ctx = this.context(req, false);
    const route = this.table.lookup(ctx.hostHeader, req.url);
    // gorouter prunes a pool when its last endpoint goes (empty_pool_timeout 0): an app that is stopped, deleted
    // or not yet healthy is an unknown route, and the body echoes the Host header as sent, port included.
    if (!route || route.backends.length === 0) {
      this.reject(req, res, ctx, 404, 'unknown_route', `404 Not Found: Requested route ('${ctx.hostHeader}') does not exist.\n`);
      return;
    }
    if (route.access) {
      const denial = routePolicyDenial(req.socket as Partial<TLSSocket>, route.access);
      if (denial) {
        this.deny(req, res, ctx, denial, route.backends[0]);
        return;
      }
    }
    if (route.routeServiceUrl) {
      const forwardedUrl = forwardedUrlOf(req, ctx.xForwardedProto);
      const back = firstHeader(req.headers[FORWARDED_URL]);
      // A request the route service sent back carries our signature for its forwarded URL; anything else goes out.
      if (!(back !== undefined && sameTarget(back, forwardedUrl) && this.routeServices.verify(firstHeader(req.headers[PROXY_SIGNATURE]), firstHeader(req.headers[PROXY_METADATA]), back))) {
        forwardToRouteService(req, res, route.routeServiceUrl, forwardedUrl, this.routeServices, (status) => this.log(ctx, req, status, 0, 0, undefined, undefined));
        return;
      }
    }
    new Exchange(this.internals, req, res, ctx, route).start();
  };

  /**
   * Proxies a request to a route the caller already looked up and found plain: it has backends, no route policies
   * and no route service (the front door's fast path; `handle` does the lookup and the checks itself).
   */
  proxy(req: ProxyRequest, res: ProxyResponse, route: Route): void {
    new Exchange(this.internals, req, res, this.context(req, false), route).start();
  }

  /**
   * A route policy refusal, as gorouter writes it: the status without X-Cf-Routererror. The access log names the
   * route's app (gorouter's setRouteEndpointForAccessLog) so the refused call shows in the target app's RTR logs.
   */
  private deny(req: http.IncomingMessage, res: http.ServerResponse, ctx: RequestContext, denial: Denial, backend: Backend | undefined): void {
    const payload = Buffer.from(`${denial.status} ${http.STATUS_CODES[denial.status]}: ${denial.reason}\n`);
    res.writeHead(denial.status, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': payload.length,
      'x-vcap-request-id': ctx.requestId,
      ...(hasRequestBody(req) && !req.complete ? { connection: 'close' } : {}),
    });
    res.end(payload);
    this.log(ctx, req, denial.status, 0, payload.length, backend, undefined);
  }

  /** Answers from the router itself with gorouter's error header. */
  private reject(
    req: ProxyRequest,
    res: ProxyResponse,
    ctx: RequestContext,
    status: number,
    routerError: string,
    body: string,
    bytesIn = 0,
    backend?: Backend,
  ): void {
    const payload = Buffer.from(body);
    if (!res.headersSent) {
      res.writeHead(status, {
        'content-type': 'text/plain; charset=utf-8',
        'content-length': payload.length,
        'x-cf-routererror': routerError,
        'x-vcap-request-id': ctx.requestId,
        // The request body may be unread; closing keeps the client from sending more into a dead exchange.
        ...(hasRequestBody(req) && !req.complete ? { connection: 'close' } : {}),
      });
    }
    res.end(payload);
    this.log(ctx, req, status, bytesIn, payload.length, backend, routerError);
  }

  /**
   * The node `upgrade` listener (WebSocket and other protocol switches): the backend's 101 and the raw
   * connection are passed through; the instance counts as in flight until either side closes.
   */
  readonly handleUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    const ctx = this.context(req, true);
    socket.on('error', () => socket.destroy());
    const route = this.table.lookup(ctx.hostHeader, req.url);
    if (!route || route.backends.length === 0) {
      writeRawError(socket, 404, 'Not Found', 'unknown_route', ctx.requestId);
      this.log(ctx, req, 404, 0, 0, undefined, 'unknown_route');
      return;
    }
    const denial = route.access ? routePolicyDenial(req.socket as Partial<TLSSocket>, route.access) : undefined;
    if (denial) {
      const body = `${denial.status} ${http.STATUS_CODES[denial.status]}: ${denial.reason}\n`;
      if (!socket.destroyed) {
        socket.end(
          `HTTP/1.1 ${denial.status} ${http.STATUS_CODES[denial.status]}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
            `Content-Length: ${Buffer.byteLength(body)}\r\nX-Vcap-Request-Id: ${ctx.requestId}\r\nConnection: close\r\n\r\n${body}`,
        );
      }
      this.log(ctx, req, denial.status, 0, 0, route.backends[0], undefined);
      return;
    }
    const tried = new Set<string>();
    const attempt = (n: number): void => {
      const backend = RouteTable.pick(route, tried);
      if (!backend) {
        writeRawError(socket, 502, 'Bad Gateway', 'endpoint_failure', ctx.requestId);
        this.log(ctx, req, 502, 0, 0, undefined, 'endpoint_failure');
        return;
      }
      tried.add(backend.instanceId);
      this.acquire(backend.instanceId);
      let released = false;
      const done = (status: number, bytesIn: number, bytesOut: number): void => {
        if (released) return;
        released = true;
        this.release(backend.instanceId);
        this.log(ctx, req, status, bytesIn, bytesOut, backend, undefined);
      };
      const proxyReq = http.request({
        host: backend.host,
        port: backend.port,
        method: req.method,
        path: req.url,
        headers: ctx.headers,
        agent: false,
      });
      proxyReq.on('error', (err: ErrnoLike) => {
        if (released) return;
        released = true;
        this.release(backend.instanceId);
        if (err.code !== undefined && CONNECT_ERRORS.has(err.code) && n + 1 < this.maxAttempts && !socket.destroyed) {
          attempt(n + 1);
          return;
        }
        writeRawError(socket, 502, 'Bad Gateway', 'endpoint_failure', ctx.requestId);
        this.log(ctx, req, 502, 0, 0, backend, 'endpoint_failure');
      });
      proxyReq.on('response', (proxyRes) => {
        // The backend declined the upgrade and answered normally: relay that answer and close.
        socket.write(rawHead(proxyRes.statusCode ?? 502, proxyRes.statusMessage, proxyRes.rawHeaders));
        let bytesOut = 0;
        proxyRes.on('data', (c: Buffer) => (bytesOut += c.length));
        proxyRes.pipe(socket);
        proxyRes.on('close', () => done(proxyRes.statusCode ?? 502, 0, bytesOut));
      });
      proxyReq.on('upgrade', (proxyRes, proxySocket, proxyHead) => {
        let bytesIn = head.length;
        let bytesOut = proxyHead.length;
        proxySocket.on('error', () => socket.destroy());
        socket.on('error', () => proxySocket.destroy());
        socket.write(rawHead(proxyRes.statusCode ?? 101, proxyRes.statusMessage, proxyRes.rawHeaders));
        if (proxyHead.length > 0) socket.write(proxyHead);
        if (head.length > 0) proxySocket.write(head);
        socket.on('data', (c: Buffer) => (bytesIn += c.length));
        proxySocket.on('data', (c: Buffer) => (bytesOut += c.length));
        proxySocket.pipe(socket);
        socket.pipe(proxySocket);
        const close = (): void => {
          socket.destroy();
          proxySocket.destroy();
          done(proxyRes.statusCode ?? 101, bytesIn, bytesOut);
        };
        socket.on('close', close);
        proxySocket.on('close', close);
      });
      const timeout = setTimeout(() => {
        if (released) return;
        released = true;
        this.release(backend.instanceId);
        proxyReq.destroy();
        writeRawError(socket, 502, 'Bad Gateway', 'endpoint_failure', ctx.requestId);
        this.log(ctx, req, 502, 0, 0, backend, 'endpoint_failure');
      }, this.responseTimeoutMs);
      timeout.unref();
      const answered = (): void => clearTimeout(timeout);
      proxyReq.once('response', answered);
      proxyReq.once('upgrade', answered);
      proxyReq.once('close', answered);
      socket.once('close', () => {
        if (!released) proxyReq.destroy();
      });
      proxyReq.end();
    };
    attempt(0);
  };
}

interface RouterInternals {
  pool: BackendPool;
  /** Puts an exchange under the response-header deadline sweep (its `deadline`), and takes it off. */
  watch(exchange: Exchange): void;
  unwatch(exchange: Exchange): void;
  maxAttempts: number;
  retryBufferBytes: number;
  responseTimeoutMs: number;
  acquire(instanceId: string): void;
  release(instanceId: string): void;
  log(
    ctx: RequestContext,
    req: ProxyRequest,
    status: number,
    bytesIn: number,
    bytesOut: number,
    backend: Backend | undefined,
    routerError: string | undefined,
  ): void;
  reject(
    req: ProxyRequest,
    res: ProxyResponse,
    ctx: RequestContext,
    status: number,
    routerError: string,
    body: string,
    bytesIn: number,
    backend: Backend | undefined,
  ): void;
}

function rawHead(status: number, message: string | undefined, rawHeaders: string[]): string {
  let head = `HTTP/1.1 ${status} ${message ?? http.STATUS_CODES[status] ?? ''}\r\n`;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) head += `${rawHeaders[i]}: ${rawHeaders[i + 1]}\r\n`;
  return `${head}\r\n`;
}

function writeRawError(socket: Duplex, status: number, reason: string, code: string, requestId: string): void {
  if (socket.destroyed) return;
  const body = `${status} ${reason}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `X-Cf-Routererror: ${code}\r\nX-Vcap-Request-Id: ${requestId}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** The replay window of a request without a body: nothing is ever added to it. */
const NOTHING_TO_REPLAY: Buffer[] = [];

/**
 * The backend's response headers for the client, in one pass: hop-by-hop headers dropped (and those its
 * Connection header names), X-Vcap-Request-Id added when the app did not send one.
 */
function responseHeaders(raw: readonly string[], requestId: string): string[] {
  const out: string[] = [];
  let connection: string | undefined;
  let hasId = false;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (lower === 'connection') connection = connection === undefined ? raw[i + 1]! : `${connection}, ${raw[i + 1]!}`;
    if (HOP_BY_HOP.has(lower)) continue;
    if (lower === 'x-vcap-request-id') hasId = true;
    out.push(name, raw[i + 1]!);
  }
  const extra = connectionTokens(connection);
  const headers = extra ? forwardableRawHeaders(out, undefined, extra) : out;
  if (extra?.has('x-vcap-request-id')) hasId = false;
  if (!hasId) headers.push('X-Vcap-Request-Id', requestId);
  return headers;
}

/** The request line and headers for the backend (CRLF-terminated lines, no blank line). */
function requestHead(method: string, url: string, headers: readonly string[]): string {
  let head = `${method} ${url} HTTP/1.1\r\n`;
  for (let i = 0; i + 1 < headers.length; i += 2) head += `${headers[i]!}: ${headers[i + 1]!}\r\n`;
  return head;
}

/**
 * The exchanges waiting for response headers: a doubly linked list threaded through the exchanges, each link
 * cleared when an exchange leaves it. A Set did this job before and cost the router most of its p99 — not in its
 * own operations but in the garbage collector. Measured under `wrk -c50` (bench/router.ts, --trace-gc-nvp): with
 * the Set ~2 MB of request objects were promoted at every scavenge, scavenges took 5–10 ms and a mark-compact ran
 * every ~2 s; with this list ~60 KB survive a scavenge (the requests in flight), scavenges take ~1 ms and no
 * mark-compact runs. The mechanism, as far as V8's source tells: a Set rehashes into a new table every few dozen
 * add/delete pairs, and the obsolete table keeps its entries and a link to its successor; a scavenge treats every
 * old-generation object as live, so once one obsolete table was promoted, the chain of tables after it and every
 * exchange they named (with its request, headers and strings) survived and was promoted in turn.
 */
class WaitList {
  private head: Exchange | undefined;
  private tail: Exchange | undefined;
  size = 0;

  add(ex: Exchange): void {
    if (ex.waitListed) return;
    ex.waitListed = true;
    ex.waitPrev = this.tail;
    ex.waitNext = undefined;
    if (this.tail) this.tail.waitNext = ex;
    else this.head = ex;
    this.tail = ex;
    this.size++;
  }

  remove(ex: Exchange): void {
    if (!ex.waitListed) return;
    ex.waitListed = false;
    const { waitPrev: prev, waitNext: next } = ex;
    if (prev) prev.waitNext = next;
    else this.head = next;
    if (next) next.waitPrev = prev;
    else this.tail = prev;
    ex.waitPrev = undefined;
    ex.waitNext = undefined;
    this.size--;
  }

  /** Takes out and returns the exchanges whose deadline has passed. */
  takeExpired(now: number): Exchange[] {
    const expired: Exchange[] = [];
    for (let ex = this.head; ex; ) {
      const next = ex.waitNext;
      if (ex.deadline <= now) {
        this.remove(ex);
        expired.push(ex);
      }
      ex = next;
    }
    return expired;
  }
}

/**
 * One proxied request: its attempts, body replay window and response relay. The response side is a
 * `ResponseSink`: what one read from the backend produced is gathered and written to the client at once, so a
 * small response goes out as the head and body in one write.
 */
class Exchange implements ResponseSink {
  /** The first instance tried; a Set of all tried is made only when a request is retried. */
  private firstTried: string | undefined;
  private tried: Set<string> | undefined;
  private attempts = 0;
  private current: BackendConnection | undefined;
  private backend: Backend | undefined;
  /** The backend whose in-flight slot this exchange holds. */
  private held: Backend | undefined;
  private responded = false;
  private finished = false;
  private bytesIn = 0;
  private bytesOut = 0;
  private readonly hasBody: boolean;
  private readonly chunked: boolean;
  private bodyEnded = false;
  /** Body chunks kept for replay; undefined once the body outgrew the window (no more retries then). */
  private replay: Buffer[] | undefined;
  private replayBytes = 0;
  /** When the current attempt has waited too long for response headers (the router's deadline sweep checks). */
  deadline = 0;
  /** @internal the neighbours in the router's WaitList while this exchange waits for response headers. */
  waitPrev: Exchange | undefined;
  /** @internal */
  waitNext: Exchange | undefined;
  /** @internal */
  waitListed = false;
  /** The request line and headers, built once for every attempt. */
  private head: string | undefined;
  /** Response head not yet written to the client. */
  private pendingHead: { status: number; message: string; headers: string[] } | undefined;
  /** Response body gathered during the current read from the backend. */
  private pending: Buffer[] = [];
  private onClientDrain: (() => void) | undefined;
  private onBackendDrain: (() => void) | undefined;

  constructor(
    private readonly r: RouterInternals,
    private readonly req: ProxyRequest,
    private readonly res: ProxyResponse,
    private readonly ctx: RequestContext,
    private readonly route: Route,
  ) {
    this.hasBody = hasRequestBody(req);
    this.replay = this.hasBody ? [] : NOTHING_TO_REPLAY;
    this.chunked = this.hasBody && req.headers['content-length'] === undefined;
    if (this.chunked) ctx.headers.push('Transfer-Encoding', 'chunked');
  }

  start(): void {
    this.res.on('close', this.onClientClose.bind(this));
    if (this.hasBody) {
      this.req.on('data', (chunk: Buffer) => this.onBodyData(chunk));
      this.req.on('end', () => {
        this.bodyEnded = true;
        this.current?.end();
      });
    } else {
      this.bodyEnded = true;
    }
    this.attempt();
  }

  private attempt(): void {
    if (this.firstTried !== undefined && !this.tried) this.tried = new Set([this.firstTried]);
    const backend = RouteTable.pick(this.route, this.tried);
    if (!backend && this.attempts === 0) {
      // The pool emptied (every instance drained) between the lookup and the first attempt.
      this.noEndpoints();
      return;
    }
    if (!backend) {
      this.fail();
      return;
    }
    this.attempts++;
    if (this.tried) this.tried.add(backend.instanceId);
    else this.firstTried = backend.instanceId;
    this.backend = backend;
    this.held = backend;
    this.r.acquire(backend.instanceId);

    const conn = this.r.pool.acquire(backend.host, backend.port);
    this.current = conn;
    this.deadline = Date.now() + this.r.responseTimeoutMs;
    this.r.watch(this);
    this.head ??= requestHead(this.req.method ?? 'GET', this.req.url ?? '/', this.ctx.headers);
    conn.start(this.head, this, { headRequest: this.req.method === 'HEAD', chunked: this.chunked, hasBody: this.hasBody });

    if (this.replay && this.replay.length > 0) for (const chunk of this.replay) conn.write(chunk);
    if (this.bodyEnded) conn.end();
    // A failed attempt may have left the client paused on backpressure that will now never drain.
    else if (this.req.isPaused()) this.req.resume();
  }

  private onBodyData(chunk: Buffer): void {
    this.bytesIn += chunk.length;
    if (this.replay) {
      this.replayBytes += chunk.length;
      if (this.replayBytes <= this.r.retryBufferBytes) this.replay.push(chunk);
      else this.replay = undefined;
    }
    const conn = this.current;
    if (!conn || this.finished) return;
    if (!conn.write(chunk)) {
      this.req.pause();
      conn.socket.once('drain', (this.onBackendDrain ??= () => void this.req.resume()));
    }
  }

  private retryable(err: BackendError, reused: boolean): boolean {
    if (this.responded || this.finished || this.replay === undefined) return false;
    if (this.attempts >= this.r.maxAttempts) return false;
    const code = err.code ?? '';
    if (CONNECT_ERRORS.has(code)) return true;
    // A reset on a reused keep-alive connection is the backend closing an idle connection, not a failed request.
    if (code === 'ECONNRESET' || code === 'EPIPE') return reused;
    return false;
  }

  private clearTimer(): void {
    if (this.waitListed) this.r.unwatch(this);
  }

  /** No response headers in time: give up on the backend, and on the request (it may not be idempotent). */
  timedOut(): void {
    const conn = this.current;
    if (!conn || this.responded || this.finished) return;
    this.current = undefined;
    // Destroying closes the connection, so the pool never hands the stuck connection out again.
    conn.destroy();
    this.releaseHeld();
    this.fail();
  }

  onError(err: BackendError, reused: boolean): void {
    this.clearTimer();
    this.current = undefined;
    if (this.responded) {
      // Headers already went out (or are about to); the only honest signal left is cutting the connection.
      this.pendingHead = undefined;
      this.pending = [];
      this.releaseHeld();
      this.res.destroy();
      return;
    }
    this.releaseHeld();
    if (this.retryable(err, reused)) {
      this.attempt();
      return;
    }
    this.fail();
  }

  private noEndpoints(): void {
    if (this.finished) return;
    this.finished = true;
    this.r.reject(
      this.req,
      this.res,
      this.ctx,
      503,
      'no_endpoints',
      `503 Service Unavailable: Requested route ('${this.ctx.hostHeader}') has no available endpoints.\n`,
      this.bytesIn,
      undefined,
    );
  }

  private fail(): void {
    if (this.finished) return;
    this.finished = true;
    this.current = undefined;
    this.r.reject(
      this.req,
      this.res,
      this.ctx,
      502,
      'endpoint_failure',
      '502 Bad Gateway: Registered endpoint failed to handle the request.\n',
      this.bytesIn,
      this.backend,
    );
  }

  onHead(status: number, message: string, rawHeaders: string[]): void {
    if (this.finished) return;
    this.clearTimer();
    this.responded = true;
    this.replay = undefined;
    this.pendingHead = { status, message, headers: responseHeaders(rawHeaders, this.ctx.requestId) };
  }

  onBody(chunk: Buffer): void {
    this.bytesOut += chunk.length;
    this.pending.push(chunk);
  }

  /** The whole response is in: head and body go out together, and the backend slot is free. */
  onEnd(): void {
    this.clearTimer();
    this.current = undefined;
    this.releaseHeld();
    if (this.finished || this.res.destroyed) return;
    this.writePendingHead();
    const body = this.pending.length === 1 ? this.pending[0] : this.pending.length === 0 ? undefined : Buffer.concat(this.pending);
    this.pending = [];
    if (body) this.res.end(body);
    else this.res.end();
  }

  onFlush(): void {
    if (this.finished || this.res.writableEnded || this.res.destroyed) return;
    if (!this.pendingHead && this.pending.length === 0) return;
    this.writePendingHead();
    let ok = true;
    for (const chunk of this.pending) ok = this.res.write(chunk);
    this.pending = [];
    if (!ok && this.current) {
      this.current.pause();
      this.res.once('drain', (this.onClientDrain ??= () => this.current?.resume()));
    }
  }

  private writePendingHead(): void {
    const head = this.pendingHead;
    if (!head) return;
    this.pendingHead = undefined;
    this.res.writeHead(head.status, head.message, head.headers);
  }

  private releaseHeld(): void {
    if (this.held) {
      const id = this.held.instanceId;
      this.held = undefined;
      this.r.release(id);
    }
  }

  private onClientClose(): void {
    this.clearTimer();
    const completed = this.res.writableFinished;
    if (!completed) {
      this.current?.destroy();
      this.current = undefined;
    }
    this.releaseHeld();
    if (this.finished) return;
    this.finished = true;
    // 499 (client closed request), as gorouter logs it, when the client left before any response.
    const status = this.res.headersSent ? this.res.statusCode : 499;
    this.r.log(this.ctx, this.req, status, this.bytesIn, this.bytesOut, this.backend, undefined);
  }
}
