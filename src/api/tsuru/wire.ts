import type { Context, Hono, Handler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { ZodError } from 'zod';
import { BlobTooLargeError } from '../../blobstore/blobstore.ts';
import { KilnError } from '../../domain/errors.ts';
import type { Env } from '../context.ts';
import { zodMessages } from '../cf/errors.ts';

/**
 * Tsuru's wire rules (research/tsuru.md §3), kept apart from what the endpoints mean: version-prefixed paths,
 * Go-style form decoding with dotted nested keys, plain-text errors, JSON streams and the deploy text stream.
 */

/** What every response carries; the CLI warns when its own version is lower and skips the check without it. */
export const SUPPORTED_TSURU = '1.0.1';

/** Silence after which a stream writes a keepalive (tsuru's io/keepalive_writer.go). */
export const KEEPALIVE_MS = 30_000;

// ---- routing ----

type Method = 'get' | 'post' | 'put' | 'delete';

/**
 * Registers a route at its bare path and behind any numeric version prefix (`/1.0/apps`, `/1.18/auth/schemes`).
 * Tsuru matches the exact version a route was registered with; accepting any is kinder and loses nothing.
 */
export function route(app: Hono<Env>, method: Method, path: string, handler: Handler<Env>): void {
  app[method](path, handler);
  app[method](`/:tsuruVersion{[0-9]+(?:\\.[0-9]+)*}${path}`, handler);
}

/** The request path without the mount prefix and the version (what 501 messages and logs name). */
export function tsuruPath(c: Context): string {
  return c.req.path.replace(/^\/tsuru/, '').replace(/^\/[0-9]+(?:\.[0-9]+)*(?=\/|$)/, '') || '/';
}

// ---- errors ----

/** An answer chosen by the facade: plain text with a status, as tsuru's error middleware writes it. */
export class TsuruError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export const unauthenticated = () => new TsuruError(401, 'You must provide a valid Authorization header');

/** Status and text for anything a handler or service threw, before a stream has started. */
export function errorText(err: unknown): { status: number; text: string } {
  if (err instanceof TsuruError) return { status: err.status, text: err.message };
  if (err instanceof BlobTooLargeError) return { status: 413, text: err.detail };
  if (err instanceof KilnError) {
    // Cloud Controller's 422 "cannot do that" is tsuru's 400; the rest keep their meaning.
    const status = err.status === 422 ? 400 : err.status;
    const text = [err, ...err.more].map((e) => e.detail).join('\n');
    return { status, text };
  }
  if (err instanceof ZodError) return { status: 400, text: zodMessages(err).join(', ') };
  if (err instanceof HTTPException && err.status < 500) return { status: 400, text: 'invalid request body' };
  return { status: 500, text: 'An unknown error occurred.' };
}

/** The facade's onError: `text/plain` with the status (research/tsuru.md §3.5). */
export function handleTsuruError(err: Error, c: Context<Env>): Response {
  const { status, text } = errorText(err);
  if (status >= 500) c.get('log')?.error({ err }, 'tsuru API: unhandled error');
  const headers: Record<string, string> = { 'Content-Type': 'text/plain; charset=utf-8', 'Supported-Tsuru': SUPPORTED_TSURU };
  if (status === 401) headers['WWW-Authenticate'] = 'Bearer realm="tsuru" scope="tsuru"';
  return new Response(`${text}\n`, { status, headers });
}

// ---- request bodies ----

/**
 * The request's input as tsuru's handlers read it: query values merged with a form body (urlencoded or
 * multipart text fields) or a JSON body flattened to dotted keys; names match case-insensitively and repeated
 * keys are lists. `Envs.0.Name` stays a flat key; `objects('Envs')` rebuilds the list.
 */
export class TsuruForm {
  private readonly values = new Map<string, string[]>();

  constructor(entries: Iterable<[string, string]>) {
    for (const [k, v] of entries) {
      const key = k.toLowerCase();
      const list = this.values.get(key);
      if (list) list.push(v);
      else this.values.set(key, [v]);
    }
  }

  get(key: string): string | undefined {
    return this.values.get(key.toLowerCase())?.[0];
  }

  all(key: string): string[] {
    return this.values.get(key.toLowerCase()) ?? [];
  }

  /** Go's strconv.ParseBool: 1, t, true (any case) and 0, f, false; anything else is a 400. */
  bool(key: string, fallback = false): boolean {
    const v = this.get(key);
    if (v === undefined || v === '') return fallback;
    if (/^(1|t|true)$/i.test(v)) return true;
    if (/^(0|f|false)$/i.test(v)) return false;
    throw new TsuruError(400, `invalid boolean value for ${key}: ${v}`);
  }

  int(key: string): number | undefined {
    const v = this.get(key);
    if (v === undefined || v === '') return undefined;
    if (!/^-?[0-9]+$/.test(v)) throw new TsuruError(400, `invalid integer value for ${key}: ${v}`);
    return Number(v);
  }

  /** `Envs.0.Name=A&Envs.0.Value=1&Envs.1.Name=B` → `[{name: 'A', value: '1'}, {name: 'B'}]` (field names lower-cased). */
  objects(prefix: string): Array<Record<string, string>> {
    const p = `${prefix.toLowerCase()}.`;
    const byIndex = new Map<number, Record<string, string>>();
    for (const [key, list] of this.values) {
      if (!key.startsWith(p)) continue;
      const m = /^([0-9]+)\.(.+)$/.exec(key.slice(p.length));
      if (!m) continue;
      const index = Number(m[1]);
      const entry = byIndex.get(index) ?? {};
      entry[m[2]!] = list[0]!;
      byIndex.set(index, entry);
    }
    return [...byIndex.entries()].sort((a, b) => a[0] - b[0]).map(([, v]) => v);
  }

  /** `routeropts.a=1` → `{a: '1'}`. */
  map(prefix: string): Record<string, string> {
    const p = `${prefix.toLowerCase()}.`;
    const out: Record<string, string> = {};
    for (const [key, list] of this.values) if (key.startsWith(p)) out[key.slice(p.length)] = list[0]!;
    return out;
  }
}

/** Flattens a JSON body into dotted keys (`{Envs: [{Name: 'A'}]}` → `Envs.0.Name=A`); arrays of scalars repeat. */
function flatten(value: unknown, prefix: string, out: Array<[string, string]>): void {
  if (value === null || value === undefined) return;
  if (Array.isArray(value)) {
    const scalars = value.every((v) => typeof v !== 'object' || v === null);
    value.forEach((v, i) => flatten(v, scalars ? prefix : `${prefix}.${i}`, out));
    return;
  }
  if (typeof value === 'object') {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
    return;
  }
  out.push([prefix, String(value)]);
}

/** Reads the query and (unless `queryOnly`) the body; never call it on a multipart upload (deploy reads its own). */
export async function readForm(c: Context<Env>, opts: { queryOnly?: boolean } = {}): Promise<TsuruForm> {
  const entries: Array<[string, string]> = [...new URL(c.req.url).searchParams.entries()];
  if (!opts.queryOnly && c.req.raw.body) {
    const type = c.req.header('content-type') ?? '';
    if (/^application\/json/i.test(type)) {
      const text = await c.req.text();
      if (text.trim() !== '') {
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          throw new TsuruError(400, 'invalid JSON body');
        }
        flatten(body, '', entries);
      }
    } else if (/^(application\/x-www-form-urlencoded|multipart\/form-data)/i.test(type)) {
      const body = await c.req.parseBody({ all: true });
      for (const [k, v] of Object.entries(body)) {
        for (const item of Array.isArray(v) ? v : [v]) if (typeof item === 'string') entries.push([k, item]);
      }
    } else {
      // The CLI always names its encoding; a bare body is read as a form, as Go's ParseForm would not.
      const text = await c.req.text();
      if (text.trim() !== '') for (const [k, v] of new URLSearchParams(text)) entries.push([k, v]);
    }
  }
  if (entries.some(([k, v]) => k.includes('\u0000') || v.includes('\u0000'))) throw new TsuruError(400, 'parameters may not contain NUL characters');
  return new TsuruForm(entries);
}

// ---- responses ----

/** A JSON answer; an empty list is 204 with no body, which the CLI prints as nothing. */
export function jsonList(c: Context<Env>, list: unknown[]): Response {
  if (list.length === 0) return c.body(null, 204);
  return c.json(list);
}

/** A writer of one streamed response; writes after the client left are dropped. */
export interface StreamWriter {
  /** Raw text, as written (the deploy stream). */
  raw(text: string): void;
  /** Whether the client has gone away (the work may stop early). */
  readonly closed: boolean;
  /** Aborted when the client disconnects. */
  readonly signal: AbortSignal;
}

/**
 * A streamed response that is sent as it is written, with `keepalive` written after `keepaliveMs` of silence
 * (tsuru's keepalive writer), and closed when `run` settles. `run` must not throw: it writes its own error line.
 */
export function streamResponse(
  c: Context<Env>,
  opts: { contentType: string; keepalive: string; keepaliveMs?: number; headers?: Record<string, string> },
  run: (w: StreamWriter) => Promise<void>,
): Response {
  const encoder = new TextEncoder();
  const abort = new AbortController();
  const reqSignal = c.req.raw.signal;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  const interval = opts.keepaliveMs ?? KEEPALIVE_MS;
  const arm = () => {
    if (timer) clearTimeout(timer);
    if (closed) return;
    timer = setTimeout(() => {
      writer.raw(opts.keepalive);
    }, interval);
    timer.unref();
  };
  const finish = () => {
    if (closed) return;
    closed = true;
    if (timer) clearTimeout(timer);
    try {
      controller.close();
    } catch {
      // already closed by a cancel
    }
  };
  const writer: StreamWriter = {
    raw(text: string) {
      if (closed) return;
      try {
        controller.enqueue(encoder.encode(text));
      } catch {
        closed = true;
        abort.abort();
        return;
      }
      arm();
    },
    get closed() {
      return closed;
    },
    signal: abort.signal,
  };
  const body = new ReadableStream<Uint8Array>({
    start(ctrl) {
      controller = ctrl;
      arm();
      reqSignal?.addEventListener('abort', () => {
        abort.abort();
        finish();
      });
      void run(writer).finally(finish);
    },
    cancel() {
      closed = true;
      if (timer) clearTimeout(timer);
      abort.abort();
    },
  });
  return new Response(body, {
    status: 200,
    headers: { 'Content-Type': opts.contentType, 'Supported-Tsuru': SUPPORTED_TSURU, 'Cache-Control': 'no-store', ...opts.headers },
  });
}

/** One line of a JSON stream: `{"Message": …, "Timestamp": …}` or, to fail, with `Error`. */
export function jsonLine(message: string, error?: string): string {
  const line: Record<string, string> = { Message: message, Timestamp: new Date().toISOString() };
  if (error !== undefined) line.Error = error;
  return `${JSON.stringify(line)}\n`;
}

/** What a JSON-stream operation writes with: progress messages and, on failure, the error line. */
export interface Progress {
  say(message: string): void;
  readonly signal: AbortSignal;
}

/**
 * `application/x-json-stream` (research/tsuru.md §3.4): each message is a line, a thrown error becomes the
 * final `Error` line, a bare newline keeps the connection alive every 30 s of silence.
 */
export function jsonStream(c: Context<Env>, run: (p: Progress) => Promise<void>, keepaliveMs?: number): Response {
  return streamResponse(c, { contentType: 'application/x-json-stream', keepalive: '\n', ...(keepaliveMs ? { keepaliveMs } : {}) }, async (w) => {
    const p: Progress = { say: (m) => w.raw(jsonLine(m.endsWith('\n') ? m : `${m}\n`)), signal: w.signal };
    try {
      await run(p);
    } catch (err) {
      const { status, text } = errorText(err);
      if (status >= 500) c.get('log')?.error({ err }, 'tsuru API: stream failed');
      w.raw(jsonLine('', text));
    }
  });
}

/** A path parameter of a route registered through `route` (always present when the route matched). */
export function param(c: Context, name: string): string {
  const value = c.req.param(name) as string | undefined;
  if (value === undefined) throw new TsuruError(400, `missing ${name}`);
  return value;
}
