/**
 * A small Cloud Foundry V3 client for `kiln push`: JSON/YAML/multipart requests with a bearer token, CF error
 * documents turned into readable errors, `X-Cf-Warnings`, pagination and job polling. It only relies on what
 * any Cloud Controller offers, so `kiln push` also works against a real CF.
 */

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface CfErrorItem {
  code?: number;
  title?: string;
  detail?: string;
}

export class CfApiError extends Error {
  constructor(
    readonly status: number,
    readonly method: string,
    readonly url: string,
    readonly errors: CfErrorItem[],
    readonly rawBody: string,
  ) {
    const first = errors[0];
    const what = first ? `${first.detail ?? first.title ?? 'error'}${first.title ? ` (${first.title})` : ''}` : rawBody.slice(0, 300) || 'no details';
    super(`${method} ${url} failed with ${status}: ${what}`);
  }

  /** True when the endpoint itself does not exist on this server (not "resource not found"). */
  get endpointMissing(): boolean {
    if (this.status === 405 || this.status === 501) return true;
    if (this.status !== 404) return false;
    const first = this.errors[0];
    return !first || first.detail === 'Unknown request';
  }
}

/** An OAuth error from `/oauth/token` (`{error, error_description}`). */
export class LoginError extends Error {}

/** Thrown by a caller's fetch to end a request at once: not retried, not reported as a network error. */
export class FinalError extends Error {}

/** The server could not be reached at all (refused, DNS, TLS…). */
export class NetworkError extends Error {}

export interface RootInfo {
  login: string;
  logCache: string | null;
  apiVersion: string | null;
}

export interface Job {
  guid: string;
  state: string;
  errors?: CfErrorItem[];
  warnings?: Array<{ detail?: string }>;
}

export interface ApiClientOptions {
  api: string;
  token?: string | undefined;
  fetch?: FetchLike;
  sleep?: (ms: number) => Promise<void>;
  onWarning?: (message: string) => void;
  userAgent?: string;
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  json?: unknown;
  yaml?: string;
  form?: FormData;
}

export interface Response2<T> {
  status: number;
  headers: Headers;
  body: T;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function normalizeApiUrl(api: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(api) ? api : `http://${api}`;
  return withScheme.replace(/\/+$/, '');
}

export class ApiClient {
  readonly api: string;
  token: string | undefined;
  private readonly fetchImpl: FetchLike;
  readonly sleep: (ms: number) => Promise<void>;
  private readonly onWarning: (message: string) => void;
  private readonly userAgent: string;

  constructor(options: ApiClientOptions) {
    this.api = normalizeApiUrl(options.api);
    this.token = options.token;
    this.fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
    this.sleep = options.sleep ?? defaultSleep;
    this.onWarning = options.onWarning ?? (() => {});
    this.userAgent = options.userAgent ?? `kiln-push (node ${process.version})`;
  }

  /** An absolute URL for an API path, or the URL itself when the server gave one (Location, next hrefs). */
  url(pathOrUrl: string, query?: RequestOptions['query']): string {
    const url = new URL(/^https?:\/\//i.test(pathOrUrl) ? pathOrUrl : `${this.api}${pathOrUrl.startsWith('/') ? '' : '/'}${pathOrUrl}`);
    for (const [k, v] of Object.entries(query ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    return url.toString();
  }

  async request<T = unknown>(method: string, pathOrUrl: string, options: RequestOptions = {}): Promise<Response2<T>> {
    const url = this.url(pathOrUrl, options.query);
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': this.userAgent };
    if (this.token) headers.authorization = /^bearer /i.test(this.token) ? this.token : `bearer ${this.token}`;
    let body: RequestInit['body'];
    if (options.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.json);
    } else if (options.yaml !== undefined) {
      headers['content-type'] = 'application/x-yaml';
      body = options.yaml;
    } else if (options.form !== undefined) {
      body = options.form; // fetch sets the multipart boundary itself.
    }
    // Idempotent requests are retried on a dropped connection or a 502-504, as the cf CLI does (§1.8).
    const attempts = method === 'POST' ? 1 : 3;
    let res: Response | undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        res = await this.fetchImpl(url, { method, headers, body });
        if (attempt < attempts && res.status >= 502 && res.status <= 504) {
          await res.body?.cancel();
          await this.sleep(250 * attempt);
          continue;
        }
        break;
      } catch (err) {
        if (err instanceof FinalError) throw err;
        if (attempt >= attempts) throw new NetworkError(`${method} ${url}: ${(err as Error).message}${causeOf(err)}`);
        await this.sleep(250 * attempt);
      }
    }
    this.reportWarnings(res.headers);
    const text = await res.text();
    let parsed: unknown = undefined;
    if (text.trim() !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
    }
    if (res.status >= 400) {
      const errors = Array.isArray((parsed as { errors?: unknown } | undefined)?.errors) ? ((parsed as { errors: CfErrorItem[] }).errors) : [];
      throw new CfApiError(res.status, method, url, errors, text);
    }
    return { status: res.status, headers: res.headers, body: (parsed ?? {}) as T };
  }

  async get<T = unknown>(pathOrUrl: string, query?: RequestOptions['query']): Promise<T> {
    return (await this.request<T>('GET', pathOrUrl, query ? { query } : {})).body;
  }

  async post<T = unknown>(pathOrUrl: string, json?: unknown): Promise<T> {
    return (await this.request<T>('POST', pathOrUrl, json === undefined ? {} : { json })).body;
  }

  async patch<T = unknown>(pathOrUrl: string, json: unknown): Promise<T> {
    return (await this.request<T>('PATCH', pathOrUrl, { json })).body;
  }

  /** Every resource of a list, following `pagination.next.href`. */
  async listAll<T>(pathOrUrl: string, query: RequestOptions['query'] = {}): Promise<T[]> {
    const out: T[] = [];
    let next: string | null = this.url(pathOrUrl, { per_page: 5000, ...query });
    for (let pages = 0; next && pages < 1000; pages++) {
      const page: { resources?: T[]; pagination?: { next?: { href?: string } | null } } = await this.get(next);
      out.push(...(page.resources ?? []));
      next = page.pagination?.next?.href ?? null;
    }
    return out;
  }

  /** `GET /`: where to log in and where the logs are. */
  async root(): Promise<RootInfo> {
    const doc = await this.get<{ links?: Record<string, { href?: string; meta?: { version?: string } } | null> }>('/');
    const links = doc.links ?? {};
    return {
      login: links.login?.href ?? links.uaa?.href ?? this.api,
      logCache: links.log_cache?.href ?? null,
      apiVersion: links.cloud_controller_v3?.meta?.version ?? null,
    };
  }

  /** Password grant with the cf CLI's public client (`cf`, empty secret); keeps the access token. */
  async login(loginUrl: string, username: string, password: string): Promise<string> {
    const url = `${normalizeApiUrl(loginUrl)}/oauth/token`;
    let res: Response;
    try {
      res = await this.fetchImpl(url, {
        method: 'POST',
        headers: {
          accept: 'application/json',
          authorization: `Basic ${Buffer.from('cf:').toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
          'user-agent': this.userAgent,
        },
        body: new URLSearchParams({ grant_type: 'password', password, username }).toString(),
      });
    } catch (err) {
      throw new LoginError(`Cannot reach ${url}: ${(err as Error).message}${causeOf(err)}`);
    }
    const text = await res.text();
    let body: { access_token?: string; token_type?: string; error?: string; error_description?: string } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      // Reported below with the status.
    }
    if (!res.ok || !body.access_token) {
      const why = body.error_description ?? body.error ?? (text.slice(0, 200) || `HTTP ${res.status}`);
      throw new LoginError(why === 'Bad credentials' ? 'Credentials were rejected (wrong username or password).' : `Login failed: ${why}`);
    }
    this.token = `bearer ${body.access_token}`;
    return body.access_token;
  }

  /**
   * Polls a job until it is COMPLETE (resolves) or FAILED (throws with the job's first error). A missing
   * Location means the server finished synchronously (cf-cli-flows §1.10).
   */
  async awaitJob(location: string | null, options: { intervalMs?: number; timeoutMs?: number } = {}): Promise<Job | null> {
    if (!location) return null;
    const interval = options.intervalMs ?? 500;
    const deadline = Date.now() + (options.timeoutMs ?? 10 * 60_000);
    for (;;) {
      const job = await this.get<Job>(location);
      for (const w of job.warnings ?? []) if (w.detail) this.onWarning(w.detail);
      if (job.state === 'COMPLETE') return job;
      if (job.state === 'FAILED') {
        const first = job.errors?.[0];
        throw new Error(first ? `${first.detail ?? first.title}` : 'The job failed without saying why.');
      }
      if (Date.now() > deadline) throw new Error(`Timed out waiting for job ${job.guid} (still ${job.state}).`);
      await this.sleep(interval);
    }
  }

  private reportWarnings(headers: Headers): void {
    const raw = headers.get('x-cf-warnings');
    if (!raw) return;
    for (const piece of raw.split(',')) {
      let text = piece;
      try {
        text = decodeURIComponent(piece.replace(/\+/g, ' '));
      } catch {
        // Not URL-encoded after all; show it as sent.
      }
      if (text.trim()) this.onWarning(text.trim());
    }
  }
}

/** Node's fetch hides the real reason (ECONNREFUSED…) in `cause`. */
function causeOf(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause ? ` (${cause.code ?? cause.message ?? 'unknown cause'})` : '';
}
