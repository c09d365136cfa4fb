/**
 * The front door's fast path: plain app requests are read and answered on the raw connection, without node's
 * http server objects (IncomingMessage, ServerResponse), which cost a proxy more CPU than the proxying itself.
 *
 * Every connection to the front door starts here. Each request head is parsed with node's own llhttp parser,
 * stopped right after the head. A request goes the fast way only when all of this holds: HTTP/1.1, no body
 * (no Transfer-Encoding, Content-Length absent or 0), no Expect, no Upgrade or other Connection option than
 * keep-alive/close, one Host header, and a Host that the front door gives the router for a route with instances,
 * no route policies and no route service. Anything else — the API, unknown routes, bodies, upgrades, route
 * services, a parse error (400/431) — is handed to node's http server at the request boundary, with the bytes
 * of that request put back in front of the socket, and node keeps the connection from then on. So whatever the
 * fast path does not do is done exactly as before, by the full router behind node's http server.
 *
 * The fast way is the same router (`Router.proxy` → the same Exchange, headers, retries, access log); only the
 * client side differs: `FastRequest` and `FastResponse` stand in for node's objects. Pipelined requests are
 * answered in order, one at a time. Idle connections close after the server's keepAliveTimeout and a head that
 * does not complete within headersTimeout closes its connection, as node's server does.
 */
import http from 'node:http';
import type net from 'node:net';
import { HTTPParser, METHODS, STOP_AFTER_HEAD, type LlhttpParser } from './llhttp.ts';
import type { Route } from './route-table.ts';
import type { ProxyRequest, ProxyResponse, Router } from './router.ts';

export interface FastPathOptions {
  router: Router;
  /** The route to proxy a request to the fast way, or undefined to leave it to node's http server. */
  routeFor(hostHeader: string, url: string): Route | undefined;
}

/** node's IncomingMessage keeps the first of these and drops repeats (lib/_http_incoming.js matchKnownFields). */
const FIRST_WINS = new Set([
  'content-type',
  'content-length',
  'user-agent',
  'referer',
  'host',
  'authorization',
  'proxy-authorization',
  'if-modified-since',
  'if-unmodified-since',
  'from',
  'location',
  'max-forwards',
  'retry-after',
  'etag',
  'last-modified',
  'server',
  'age',
  'expires',
]);

interface ParsedHead {
  method: string;
  url: string;
  rawHeaders: string[];
  headers: http.IncomingHttpHeaders;
  /** The client asked to close after this response. */
  close: boolean;
}

/** What a request head says, or undefined when it is not for the fast path (node's server takes it). */
function fastHead(major: number, minor: number, raw: string[], methodIndex: number, url: string, upgrade: boolean): ParsedHead | undefined {
  if (major !== 1 || minor !== 1 || upgrade) return undefined;
  const method = METHODS[methodIndex];
  if (method === undefined || method === 'CONNECT') return undefined;
  const headers: http.IncomingHttpHeaders = {};
  const h = headers as Record<string, string | string[] | undefined>;
  let hosts = 0;
  let close = false;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    switch (name) {
      case 'host':
        hosts++;
        break;
      case 'transfer-encoding':
      case 'expect':
      case 'upgrade':
        return undefined;
      case 'content-length':
        if (value !== '0' || h[name] !== undefined) return undefined;
        break;
      case 'connection':
        for (const token of value.split(',')) {
          const t = token.trim().toLowerCase();
          if (t === 'close') close = true;
          else if (t !== 'keep-alive' && t !== '') return undefined;
        }
        break;
      case 'set-cookie': {
        const prev = h[name];
        h[name] = prev === undefined ? [value] : [...(prev as string[]), value];
        continue;
      }
    }
    const prev = h[name];
    if (prev === undefined) h[name] = value;
    else if (!FIRST_WINS.has(name)) h[name] = name === 'cookie' ? `${prev as string}; ${value}` : `${prev as string}, ${value}`;
  }
  if (hosts !== 1) return undefined;
  return { method, url, rawHeaders: raw, headers, close };
}

/** A bodiless request in the shape the router reads. */
class FastRequest implements ProxyRequest {
  readonly httpVersion = '1.1';
  readonly complete = true;
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly rawHeaders: string[];

  constructor(
    head: ParsedHead,
    readonly socket: net.Socket,
  ) {
    this.method = head.method;
    this.url = head.url;
    this.headers = head.headers;
    this.rawHeaders = head.rawHeaders;
  }

  // There is no body to stream: these are never needed, and do nothing.
  on(): this {
    return this;
  }
  pause(): this {
    return this;
  }
  resume(): this {
    return this;
  }
  isPaused(): boolean {
    return false;
  }
}

let dateValue = '';
let dateUntil = 0;

/** The Date header value, computed at most once a second (node's server caches it the same way). */
function httpDate(): string {
  const now = Date.now();
  if (now >= dateUntil) {
    dateValue = new Date(now).toUTCString();
    dateUntil = now - (now % 1000) + 1000;
  }
  return dateValue;
}

const EMPTY = Buffer.alloc(0);
/** Above this a body is written after the head rather than copied into one buffer with it. */
const COPY_LIMIT = 16 * 1024;

/**
 * The response to one fast-path request, written straight to the socket. Framing follows node's server: the
 * backend's Content-Length when there is one, else chunked; no body for HEAD, 1xx, 204 and 304. The head waits
 * for the first body bytes (or the end) so a small response leaves in one write.
 */
class FastResponse implements ProxyResponse {
  headersSent = false;
  statusCode = 200;
  writableEnded = false;
  writableFinished = false;
  destroyed = false;
  private head: string | undefined;
  private chunked = false;
  private noBody = false;
  private onClose: (() => void) | undefined;
  private closed = false;

  constructor(
    private readonly conn: FastConnection,
    private readonly socket: net.Socket,
    private readonly headRequest: boolean,
    /** Close the connection after this response (the client asked, or the server is shutting down). */
    public closeAfter: boolean,
  ) {}

  writeHead(status: number, message: string | undefined, headers: string[]): this;
  writeHead(status: number, headers: Record<string, string | number>): this;
  writeHead(status: number, a?: string | Record<string, string | number>, b?: string[]): this {
    if (this.headersSent || this.head !== undefined) return this;
    this.statusCode = status;
    const message = typeof a === 'string' ? a : undefined;
    this.noBody = this.headRequest || status === 204 || status === 304 || (status >= 100 && status < 200);
    let head = `HTTP/1.1 ${status} ${message || http.STATUS_CODES[status] || 'unknown'}\r\n`;
    let list: string[];
    if (Array.isArray(b)) list = b;
    else {
      list = [];
      if (a !== undefined && typeof a === 'object') for (const [name, value] of Object.entries(a)) list.push(name, String(value));
    }
    let hasLength = false;
    let hasDate = false;
    let hasConnection = false;
    for (let i = 0; i + 1 < list.length; i += 2) {
      const name = list[i]!;
      const value = list[i + 1]!;
      // Only three names matter here; their lengths (4, 10, 14) spare lowercasing every other header.
      const n = name.length;
      if (n === 4 || n === 10 || n === 14) {
        const lower = name.toLowerCase();
        if (lower === 'content-length') hasLength = true;
        else if (lower === 'date') hasDate = true;
        else if (lower === 'connection') {
          hasConnection = true;
          if (/\bclose\b/i.test(value)) this.closeAfter = true;
        }
      }
      head += `${name}: ${value}\r\n`;
    }
    if (!hasDate) head += `Date: ${httpDate()}\r\n`;
    if (!this.noBody && !hasLength) {
      head += 'Transfer-Encoding: chunked\r\n';
      this.chunked = true;
    }
    if (this.closeAfter && !hasConnection) head += 'Connection: close\r\n';
    this.head = `${head}\r\n`;
    return this;
  }

  write(chunk: Buffer): boolean {
    if (this.writableEnded || this.destroyed) return false;
    if (this.head === undefined) this.writeHead(this.statusCode, undefined, []);
    if (this.noBody || chunk.length === 0) return this.send(undefined, false);
    return this.send(chunk, false);
  }

  end(chunk?: Buffer): this {
    if (this.writableEnded || this.destroyed) return this;
    if (this.head === undefined) this.writeHead(this.statusCode, undefined, []);
    this.writableEnded = true;
    this.send(this.noBody || chunk === undefined || chunk.length === 0 ? undefined : chunk, true);
    this.conn.responseDone(this);
    return this;
  }

  destroy(): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.socket.destroy();
    return this;
  }

  on(_event: 'close', listener: () => void): this {
    this.onClose = listener;
    return this;
  }

  once(_event: 'drain', listener: () => void): this {
    this.socket.once('drain', listener);
    return this;
  }

  /** The connection closed: tell the exchange (once), whether the response was complete or not. */
  emitClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose?.();
  }

  /** The last write went out (called by the connection, in write order). */
  written(): void {
    this.writableFinished = true;
    this.emitClose();
  }

  /** Writes the pending head (if any), the framed body piece and, when `last`, the end of the body: one write. */
  private send(body: Buffer | undefined, last: boolean): boolean {
    const head = this.head !== undefined && !this.headersSent ? this.head : '';
    this.headersSent = true;
    let prefix = '';
    let suffix = '';
    if (this.chunked) {
      if (body) {
        prefix = `${body.length.toString(16)}\r\n`;
        suffix = last ? '\r\n0\r\n\r\n' : '\r\n';
      } else if (last) {
        suffix = '0\r\n\r\n';
      }
    }
    const bodyLength = body ? body.length : 0;
    const cb = last ? this.conn.queueWritten(this) : undefined;
    if (bodyLength === 0 && prefix === '' && suffix === '' && head === '') {
      // Nothing left to send; the empty write's callback still marks when everything before it went out.
      if (last) this.socket.write(EMPTY, cb);
      return true;
    }
    const front = head + prefix;
    if (bodyLength <= COPY_LIMIT) {
      const out = Buffer.allocUnsafe(front.length + bodyLength + suffix.length);
      out.write(front, 0, 'latin1');
      if (body) body.copy(out, front.length);
      if (suffix !== '') out.write(suffix, front.length + bodyLength, 'latin1');
      return this.socket.write(out, cb);
    }
    this.socket.cork();
    if (front !== '') this.socket.write(front, 'latin1');
    this.socket.write(body!);
    const ok = this.socket.write(suffix, 'latin1', cb);
    this.socket.uncork();
    return ok;
  }
}

/** One client connection while it is the fast path's. */
class FastConnection {
  private readonly parser: LlhttpParser = new HTTPParser();
  /** Bytes of the current request head read so far (a head may span reads). */
  private parts: Buffer[] = [];
  private headStartedAt = 0;
  private idleSince = Date.now();
  /** Set by the parser's headers-complete callback during execute. */
  private parsed: { head: ParsedHead | undefined } | undefined;
  private response: FastResponse | undefined;
  /** Bytes that arrived while a response was in progress (pipelining); parsed after it. */
  private pending: Buffer | undefined;
  private done = false;

  constructor(
    private readonly socket: net.Socket,
    private readonly server: http.Server,
    private readonly opts: FastPathOptions,
    private readonly handOverTo: (socket: net.Socket) => void,
    private readonly connections: Set<FastConnection>,
  ) {
    this.resetParser();
    this.parser[HTTPParser.kOnHeaders] = (headers: string[]) => {
      // llhttp passes long header lists in pieces; the rest comes with headers-complete.
      this.headerPieces = this.headerPieces ? this.headerPieces.concat(headers) : headers;
    };
    this.parser[HTTPParser.kOnHeadersComplete] = (
      major: number,
      minor: number,
      headers: string[] | undefined,
      method: number,
      url: string,
      _status: unknown,
      _message: unknown,
      upgrade: boolean,
    ): number => {
      const raw = this.headerPieces ? (headers ? this.headerPieces.concat(headers) : this.headerPieces) : (headers ?? []);
      this.headerPieces = undefined;
      this.parsed = { head: fastHead(major, minor, raw, method, url, upgrade) };
      return STOP_AFTER_HEAD;
    };
    this.parser[HTTPParser.kOnBody] = () => undefined;
    this.parser[HTTPParser.kOnMessageComplete] = () => undefined;
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onClose);
    socket.on('error', this.onError);
    socket.setNoDelay(true);
  }

  private headerPieces: string[] | undefined;
  /** The server's maxHeaderSize option, else node's default (--max-http-header-size): oversized heads get 431 from node. */
  private get maxHeaderSize(): number {
    return (this.server as { maxHeaderSize?: number }).maxHeaderSize ?? http.maxHeaderSize;
  }

  get idle(): boolean {
    return this.response === undefined && this.parts.length === 0;
  }

  private resetParser(): void {
    this.parser.initialize(HTTPParser.REQUEST, {}, this.maxHeaderSize, 0);
    this.headerPieces = undefined;
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.done) return;
    if (this.response) {
      // Pipelined: keep it for after the current response, and read no more meanwhile.
      this.pending = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
      this.socket.pause();
      return;
    }
    this.feed(chunk);
  };

  private feed(chunk: Buffer): void {
    if (this.parts.length === 0) this.headStartedAt = Date.now();
    const ret = this.parser.execute(chunk);
    const parsed = this.parsed;
    this.parsed = undefined;
    if (typeof ret !== 'number' || !parsed) {
      this.parts.push(chunk);
      // A malformed or oversized head: node's server answers it (400, 431) as it always has.
      if (typeof ret !== 'number') this.handOver();
      return;
    }
    const head = parsed.head;
    const route = head ? this.opts.routeFor(head.headers.host as string, head.url) : undefined;
    if (!head || !route) {
      this.parts.push(chunk);
      this.handOver();
      return;
    }
    this.parts = [];
    if (ret < chunk.length) this.pending = chunk.subarray(ret);
    const closeAfter = head.close || !this.server.listening;
    const res = new FastResponse(this, this.socket, head.method === 'HEAD', closeAfter);
    this.response = res;
    this.opts.router.proxy(new FastRequest(head, this.socket), res, route);
  }

  /** The response was written (or queued for writing): go on with the next request. */
  responseDone(res: FastResponse): void {
    if (this.response !== res || this.done) return;
    this.response = undefined;
    this.idleSince = Date.now();
    if (res.closeAfter || !this.server.listening) {
      this.finish(true);
      this.socket.end();
      return;
    }
    // The parser stopped right after the head, at a message boundary, and goes on from there.
    if (this.pending) {
      // Continue after the current call stack (this runs inside the backend's read callback).
      process.nextTick(this.continuePipeline);
    } else if (this.socket.isPaused()) {
      this.socket.resume();
    }
  }

  /** Responses whose last write is on its way, oldest first; one callback for all (writes complete in order). */
  private readonly unwritten: FastResponse[] = [];
  private readonly onWritten = (): void => {
    this.unwritten.shift()?.written();
  };

  queueWritten(res: FastResponse): () => void {
    this.unwritten.push(res);
    return this.onWritten;
  }

  private readonly continuePipeline = (): void => {
    if (this.done || this.response) return;
    const next = this.pending;
    this.pending = undefined;
    if (this.socket.isPaused()) this.socket.resume();
    if (next) this.feed(next);
  };

  /** Gives the connection, from the start of the current request, to node's http server for good. */
  private handOver(): void {
    const bytes = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
    this.parts = [];
    this.finish();
    // With no 'data' listener left the bytes wait in the socket's buffer until node's server adds its own.
    this.socket.unshift(bytes);
    if (this.socket.isPaused()) this.socket.resume();
    this.handOverTo(this.socket);
  }

  /** Stops being the socket's reader; `keepErrorHandler` when nobody else will listen for its errors. */
  private finish(keepErrorHandler = false): void {
    if (this.done) return;
    this.done = true;
    this.connections.delete(this);
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    if (!keepErrorHandler) {
      this.socket.off('close', this.onClose);
      this.socket.off('error', this.onError);
    }
    this.parser.free();
  }

  private readonly onClose = (): void => {
    const res = this.response;
    this.response = undefined;
    this.finish(true);
    res?.emitClose();
  };

  /**
   * The client finished sending (node's http server is half-open capable, so the socket stays open): as node's
   * server does by default, a request in progress is abandoned and the connection closed.
   */
  private readonly onEnd = (): void => {
    if (this.response) this.socket.destroy();
    else this.socket.end();
  };

  private readonly onError = (): void => {
    this.socket.destroy();
  };

  destroy(): void {
    this.socket.destroy();
  }

  /** Closes the connection if it idled past keepAliveTimeout or is taking longer than headersTimeout for a head. */
  sweep(now: number): void {
    if (this.response) return;
    if (this.parts.length > 0) {
      const limit = this.server.headersTimeout;
      if (limit > 0 && now - this.headStartedAt > limit) this.destroy();
      return;
    }
    const limit = this.server.keepAliveTimeout;
    if (limit > 0 && now - this.idleSince > limit) this.destroy();
  }
}

/**
 * Puts the fast path in front of a node http server: the server's own connection handling runs only for the
 * connections the fast path hands over. `closeAllConnections` and `closeIdleConnections` (which `close()` calls)
 * also reach the fast path's connections.
 */
export function enableFastPath(server: http.Server, opts: FastPathOptions): void {
  const nodeListeners = server.listeners('connection') as Array<(socket: net.Socket) => void>;
  server.removeAllListeners('connection');
  const handOver = (socket: net.Socket): void => {
    for (const listener of nodeListeners) listener.call(server, socket);
  };
  const connections = new Set<FastConnection>();
  server.on('connection', (socket: net.Socket) => {
    connections.add(new FastConnection(socket, server, opts, handOver, connections));
  });
  const closeAll = server.closeAllConnections.bind(server);
  server.closeAllConnections = () => {
    for (const c of [...connections]) c.destroy();
    closeAll();
  };
  const closeIdle = server.closeIdleConnections.bind(server);
  server.closeIdleConnections = () => {
    for (const c of [...connections]) if (c.idle) c.destroy();
    closeIdle();
  };
  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const c of connections) c.sweep(now);
  }, 1000);
  sweeper.unref();
  server.once('close', () => clearInterval(sweeper));
}
