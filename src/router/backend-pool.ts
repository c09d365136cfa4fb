/**
 * The router's connections to app instances: keep-alive HTTP/1.1 over plain sockets, the response parsed by node's
 * own llhttp binding (the parser node's http client and server use), without node's http client around it.
 *
 * Why not `http.request`: measured with wrk against a trivial app, node's client path (ClientRequest, Agent
 * bookkeeping, an IncomingMessage stream per response, pipe) cost the router ~100 µs of CPU per request against
 * ~50 µs for the same work here, and nginx's ~22 µs. See bench/router.ts and the commit that introduced this file.
 *
 * What the pool keeps: idle connections per backend address, newest first (a warm one is reused before a cold one),
 * closed after `idleTimeoutMs` or when the backend closes them. What a caller gets: one `BackendConnection` for one
 * request at a time; it writes the request (a prebuilt head, then the body, chunk-encoded when asked) and reports
 * the response through a `ResponseSink`. A connection goes back to the pool only after a whole response on a
 * connection both sides keep alive, and never after an error or an abandoned exchange, so a half-read response can
 * never be handed to the next request. Nothing here survives a restart: connections are in-memory only.
 */
import net from 'node:net';
import { HTTPParser, SKIP_BODY, type LlhttpParser } from './llhttp.ts';



/** Receives one response. Calls arrive synchronously from the socket's read callback. */
export interface ResponseSink {
  /** The final response head (1xx interim responses are dropped, as node's client does). */
  onHead(status: number, statusMessage: string, rawHeaders: string[]): void;
  /** A piece of the body, de-chunked; the buffer is the sink's to keep. */
  onBody(chunk: Buffer): void;
  /** The response is complete. */
  onEnd(): void;
  /** Everything one read from the backend produced has been delivered (a point to write out what was gathered). */
  onFlush(): void;
  /**
   * The exchange failed. `reused`: the connection had served an earlier response, so a reset before any response
   * byte is the backend closing an idle keep-alive connection, which proves the request was not acted on.
   */
  onError(err: BackendError, reused: boolean): void;
}

export interface BackendError extends Error {
  code?: string;
}

function backendError(message: string, code: string): BackendError {
  return Object.assign(new Error(message), { code });
}

export interface BackendPoolOptions {
  /** Idle connections kept per backend address (default 256). */
  maxIdlePerBackend?: number;
  /** An idle connection is closed after this long (default 60 s; gorouter keeps them 90 s). */
  idleTimeoutMs?: number;
}

/** One read buffer shared by every connection: each read is parsed synchronously and the parser copies bodies. */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

const CRLF = '\r\n';
const LAST_CHUNK = '0\r\n\r\n';

export class BackendConnection {
  readonly socket: net.Socket;
  private readonly parser: LlhttpParser;
  private sink: ResponseSink | undefined;
  /** The connection finished a response before: a reset before any response byte is a stale keep-alive. */
  private reused = false;
  /** Response bytes seen for the current request. */
  private gotBytes = false;
  private headRequest = false;
  private chunked = false;
  /** The current message is an interim (1xx) response, which is not passed on. */
  private interim = false;
  private keepAlive = false;
  /** The whole request went out; only then may the connection serve another one. */
  private requestDone = false;
  private dead = false;
  /** Inside parser.execute: the parser is freed only after it returns. */
  private executing = false;
  /** When the connection last went back to the pool (the pool's sweep closes it after idleTimeoutMs). */
  idleSince = 0;

  constructor(
    private readonly pool: BackendPool,
    readonly key: string,
    host: string,
    port: number,
  ) {
    this.socket = net.connect({
      host,
      port,
      onread: { buffer: READ_BUFFER, callback: (n: number, buf: Buffer) => this.onRead(n, buf) },
    });
    this.socket.setNoDelay(true);
    // Never what keeps the process alive: a request in flight has its client's connection for that.
    this.socket.unref();
    this.parser = new HTTPParser();
    this.parser.initialize(HTTPParser.RESPONSE, {}, 0, 0);
    this.parser[HTTPParser.kOnHeaders] = (headers: string[]) => this.onHeaderChunk(headers);
    this.parser[HTTPParser.kOnHeadersComplete] = (
      _major: number,
      _minor: number,
      headers: string[] | undefined,
      _method: number | undefined,
      _url: string | undefined,
      status: number,
      message: string,
      upgrade: boolean,
      keepAlive: boolean,
    ) => this.onHeadersComplete(headers, status, message, upgrade, keepAlive);
    this.parser[HTTPParser.kOnBody] = (chunk: Buffer) => {
      if (!this.interim) this.sink?.onBody(chunk);
    };
    this.parser[HTTPParser.kOnMessageComplete] = () => this.onMessageComplete();
    this.socket.on('error', (err: BackendError) => this.fail(err));
    this.socket.on('end', () => this.onEof());
    this.socket.on('close', () => this.fail(backendError('backend connection closed', 'ECONNRESET')));
  }

  /**
   * Sends a request: `head` is the request line and headers, CRLF-terminated, without the blank line. With
   * `chunked`, body writes are chunk-encoded (the head must then carry `Transfer-Encoding: chunked`).
   */
  start(head: string, sink: ResponseSink, opts: { headRequest: boolean; chunked: boolean; hasBody: boolean }): void {
    this.sink = sink;
    this.gotBytes = false;
    this.interim = false;
    this.headRequest = opts.headRequest;
    this.chunked = opts.chunked;
    this.requestDone = !opts.hasBody;
    // Header values come from node's request parser (which refuses CR and LF) or from the router itself; latin1
    // keeps obs-text bytes as they came.
    this.socket.write(`${head}\r\n`, 'latin1');
  }

  /** Writes a piece of the request body; false asks the caller to wait for the socket's 'drain'. */
  write(chunk: Buffer): boolean {
    if (this.dead || chunk.length === 0) return true;
    if (!this.chunked) return this.socket.write(chunk);
    this.socket.cork();
    this.socket.write(`${chunk.length.toString(16)}${CRLF}`, 'latin1');
    this.socket.write(chunk);
    const ok = this.socket.write(CRLF, 'latin1');
    this.socket.uncork();
    return ok;
  }

  /** The request body is complete. */
  end(): void {
    this.requestDone = true;
    if (!this.dead && this.chunked) this.socket.write(LAST_CHUNK, 'latin1');
  }

  /** Stops reading the response (the client is slow). */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  /** Abandons the exchange: the connection is closed, never reused. */
  destroy(): void {
    this.sink = undefined;
    this.close();
  }

  private close(): void {
    if (this.dead) return;
    this.dead = true;
    this.pool.forget(this);
    this.socket.destroy();
    if (!this.executing) this.parser.free();
  }

  private headers: string[] | undefined;

  private onHeaderChunk(headers: string[]): void {
    // llhttp hands over long header lists in pieces before headers-complete.
    this.headers = this.headers ? this.headers.concat(headers) : headers;
  }

  private onHeadersComplete(headers: string[] | undefined, status: number, message: string, upgrade: boolean, keepAlive: boolean): number {
    const all = this.headers ? (headers ? this.headers.concat(headers) : this.headers) : (headers ?? []);
    this.headers = undefined;
    if (status >= 100 && status < 200 && status !== 101) {
      this.interim = true;
      return 0;
    }
    const sink = this.sink;
    if (!sink || upgrade) {
      // A response nobody asked for, or a protocol switch on a plain request: the connection is unusable.
      this.fail(backendError('unexpected response from backend', 'HPE_UNEXPECTED'));
      return 1;
    }
    this.keepAlive = keepAlive;
    sink.onHead(status, message, all);
    // 1: the response to a HEAD request has no body whatever its Content-Length says.
    return this.headRequest ? SKIP_BODY : 0;
  }

  private onMessageComplete(): void {
    if (this.interim) {
      this.interim = false;
      return;
    }
    const sink = this.sink;
    this.sink = undefined;
    if (!sink) return;
    this.reused = true;
    sink.onEnd();
    if (this.keepAlive && this.requestDone && !this.dead) this.pool.release(this);
    else this.close();
  }

  private onRead(n: number, buf: Buffer): boolean {
    if (this.dead) return false;
    if (this.sink) this.gotBytes = true;
    const sink = this.sink;
    this.executing = true;
    const ret = this.parser.execute(buf.subarray(0, n));
    this.executing = false;
    if (ret instanceof Error) this.fail(Object.assign(ret, { code: (ret as BackendError).code ?? 'HPE_INVALID' }));
    if (this.dead) {
      this.parser.free();
      // A response that completed in this read is still written out; an abandoned one has no sink to flush.
      sink?.onFlush();
      return false;
    }
    sink?.onFlush();
    return true;
  }

  private onEof(): void {
    if (this.dead) return;
    if (this.sink) {
      // A body delimited by the connection's close ends here; anything else is a truncated response.
      const err = this.parser.finish();
      if (err || this.sink) {
        this.fail(backendError('backend closed the connection before the response was complete', 'ECONNRESET'));
        return;
      }
    }
    this.close();
  }

  private fail(err: BackendError): void {
    if (this.dead) return;
    const sink = this.sink;
    this.sink = undefined;
    const reused = this.reused && !this.gotBytes;
    this.close();
    sink?.onError(err, reused);
  }

  /** @internal closes the connection (the pool's idle sweep). */
  expire(): void {
    this.close();
  }

  get isDead(): boolean {
    return this.dead;
  }
}

export class BackendPool {
  private readonly idle = new Map<string, BackendConnection[]>();
  private readonly maxIdle: number;
  private readonly idleTimeoutMs: number;
  private closed = false;

  constructor(opts: BackendPoolOptions = {}) {
    this.maxIdle = opts.maxIdlePerBackend ?? 256;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
  }

  /** A connection to host:port for one request: the most recently used idle one, else a new one. */
  acquire(host: string, port: number): BackendConnection {
    const key = `${host}:${port}`;
    const list = this.idle.get(key);
    while (list && list.length > 0) {
      const conn = list.pop()!;
      if (conn.isDead) continue;
      return conn;
    }
    return new BackendConnection(this, key, host, port);
  }

  /** @internal a connection that finished a response cleanly and may serve another. */
  release(conn: BackendConnection): void {
    if (this.closed) {
      conn.destroy();
      return;
    }
    let list = this.idle.get(conn.key);
    if (!list) this.idle.set(conn.key, (list = []));
    if (list.length >= this.maxIdle) {
      conn.destroy();
      return;
    }
    conn.idleSince = Date.now();
    list.push(conn);
    this.sweepLater();
  }

  private sweeper: NodeJS.Timeout | undefined;

  /** One timer for the pool rather than one per idle connection: it runs while any connection is idle. */
  private sweepLater(): void {
    if (this.sweeper) return;
    const every = Math.max(100, Math.min(5_000, this.idleTimeoutMs / 4));
    this.sweeper = setInterval(() => {
      const cutoff = Date.now() - this.idleTimeoutMs;
      for (const list of [...this.idle.values()]) {
        // Oldest first: the list is used from its end.
        while (list.length > 0 && list[0]!.idleSince <= cutoff) list.shift()!.expire();
      }
      if (this.idle.size === 0) {
        clearInterval(this.sweeper);
        this.sweeper = undefined;
      }
    }, every);
    this.sweeper.unref();
  }

  /** @internal a connection that closed: drop it from the idle list if it is there. */
  forget(conn: BackendConnection): void {
    const list = this.idle.get(conn.key);
    if (!list) return;
    const i = list.indexOf(conn);
    if (i !== -1) list.splice(i, 1);
    if (list.length === 0) this.idle.delete(conn.key);
  }

  /** Idle connections, for tests and metrics. */
  idleCount(): number {
    let n = 0;
    for (const list of this.idle.values()) n += list.length;
    return n;
  }

  /** Closes every idle connection; connections in use close when their exchange ends. */
  close(): void {
    this.closed = true;
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const list of [...this.idle.values()]) for (const conn of [...list]) conn.destroy();
    this.idle.clear();
  }
}
