import { ApiClient, CfApiError, FinalError, LoginError, NetworkError, normalizeApiUrl, type FetchLike } from './api-client.ts';
import { readCliConfig, writeCliConfig, type CliConfig, type NamedRef } from './config-store.ts';

/** A failure meant for the user: the message says what went wrong and what to do next. */
export class CliError extends FinalError {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export interface CliIO {
  out: { write(chunk: string): unknown; isTTY?: boolean | undefined };
  err: { write(chunk: string): unknown };
  env: NodeJS.ProcessEnv;
  fetch?: FetchLike;
}

export const NOT_LOGGED_IN = "Not logged in. Use 'kiln login' to log in.";
export const NO_ORG = "No org targeted. Use 'kiln target -o ORG' to target an org.";
export const NO_SPACE = "No space targeted. Use 'kiln target -s SPACE' to target a space.";

/** `--api`, `--username`, `--password` of commands that may log in for one run (as `kiln push`). */
export interface LoginFlags {
  api?: string;
  username?: string;
  password?: string;
}

export interface TokenSet {
  access_token: string;
  refresh_token?: string;
}

/** The API URL a command talks to when `-a` is not given: the saved one, $KILN_API, else the local default. */
export function defaultApi(config: CliConfig, env: NodeJS.ProcessEnv): string {
  if (env.KILN_API) return normalizeApiUrl(env.KILN_API);
  if (config.api) return config.api;
  const port = env.PORT && /^\d+$/.test(env.PORT) && env.PORT !== '0' ? env.PORT : '9000';
  return `http://localhost:${port}`;
}

/** Seconds since the epoch at which a JWT expires, or undefined when it cannot be read. */
export function tokenExpiry(token: string): number | undefined {
  const payload = token.replace(/^bearer /i, '').split('.')[1];
  if (!payload) return undefined;
  try {
    const exp = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp : undefined;
  } catch {
    return undefined;
  }
}

/** The user id (`user_id`, else `sub`) a token was issued to. */
export function tokenUserGuid(token: string): string | undefined {
  const payload = token.replace(/^bearer /i, '').split('.')[1];
  if (!payload) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { user_id?: string; sub?: string };
    return claims.user_id ?? claims.sub;
  } catch {
    return undefined;
  }
}

/** One OAuth token request with the cf CLI's public client (`cf`, empty secret), as cf does. */
export async function requestToken(loginUrl: string, form: Record<string, string>, fetchImpl: FetchLike = (u, i) => fetch(u, i)): Promise<TokenSet> {
  const url = `${normalizeApiUrl(loginUrl)}/oauth/token`;
  let res: Response;
  try {
    res = await fetchImpl(url, {
      method: 'POST',
      headers: {
        accept: 'application/json',
        authorization: `Basic ${Buffer.from('cf:').toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams(form).toString(),
    });
  } catch (err) {
    throw new NetworkError(`Cannot reach ${url}: ${(err as Error).message}`);
  }
  const text = await res.text();
  let body: Partial<TokenSet> & { error?: string; error_description?: string } = {};
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    // Reported below with the status.
  }
  if (!res.ok || !body.access_token) {
    const why = body.error_description ?? body.error ?? (text.slice(0, 200) || `HTTP ${res.status}`);
    throw new LoginError(why === 'Bad credentials' ? 'Credentials were rejected, please try again.' : why);
  }
  return { access_token: body.access_token, ...(body.refresh_token ? { refresh_token: body.refresh_token } : {}) };
}

/**
 * The saved login and target, and an API client that sends the saved token: refreshed with the refresh token
 * shortly before it expires, and once more if the server still answers 401.
 */
export class Session {
  readonly client: ApiClient;

  private constructor(
    readonly config: CliConfig,
    private readonly io: CliIO,
    api: string,
    /** A login for this command only (`--username/--password`, $KILN_TOKEN): never written to the saved session. */
    private readonly detached = false,
  ) {
    const base = io.fetch ?? ((u: string, i?: RequestInit) => fetch(u, i));
    this.client = new ApiClient({
      api,
      token: config.accessToken,
      fetch: (url, init) => this.authorizedFetch(base, url, init),
      onWarning: (m) => io.err.write(`warning: ${m}\n`),
      userAgent: `kiln-cli (node ${process.version})`,
    });
  }

  /** The saved session; with `autoLogin` (the default) a fresh local install logs its admin in (local-login.ts). */
  static async open(io: CliIO, api?: string, opts: { autoLogin?: boolean } = {}): Promise<Session> {
    const config = await readCliConfig(io.env);
    const session = new Session(config, io, api ? normalizeApiUrl(api) : defaultApi(config, io.env));
    if (opts.autoLogin !== false && !config.accessToken) {
      // Loaded on demand: local-login needs the commands' lookups, which need this module.
      await (await import('./local-login.ts')).loginAsLocalAdmin(session, io);
    }
    return session;
  }

  /**
   * The session of one command run with `--api/--username/--password` (as `kiln push` takes them) or $KILN_TOKEN:
   * logged in for this run only, nothing saved. Without them, the saved session (`kiln login`). The saved target
   * (org and space) is kept when the API is the saved one.
   */
  static async forCommand(io: CliIO, login: LoginFlags): Promise<Session> {
    const username = login.username ?? io.env.KILN_USERNAME;
    const password = login.password ?? io.env.KILN_PASSWORD;
    if ((login.username !== undefined || login.password !== undefined) && (username === undefined || password === undefined)) {
      throw new CliError('--username and --password go together.', 2);
    }
    const own = username !== undefined && password !== undefined;
    const token = io.env.KILN_TOKEN || undefined;
    const saved = await readCliConfig(io.env);
    const api = login.api ? normalizeApiUrl(login.api) : defaultApi(saved, io.env);
    const sameApi = saved.api !== undefined && normalizeApiUrl(saved.api) === api;
    if (!own && !token) {
      if (login.api === undefined || sameApi) return Session.open(io, login.api);
      throw new CliError(`Not logged in to ${api}. Pass --username and --password, set KILN_TOKEN, or use 'kiln login -a ${api}'.`);
    }
    const config: CliConfig = sameApi ? { api, ...(saved.org ? { org: saved.org } : {}), ...(saved.space ? { space: saved.space } : {}) } : { api };
    const session = new Session(config, io, api, true);
    if (own) {
      const root = await session.client.root();
      // The access token only: without a refresh token nothing is ever refreshed into the saved session.
      session.keepTokens({ access_token: (await requestToken(root.login, { grant_type: 'password', username, password }, io.fetch)).access_token });
      config.username = username;
    } else session.keepTokens({ access_token: token! });
    return session;
  }

  get api(): string {
    return this.client.api;
  }

  async save(): Promise<void> {
    if (this.detached) return;
    await writeCliConfig(this.config, this.io.env);
  }

  requireLogin(): void {
    if (!this.config.accessToken) throw new CliError(NOT_LOGGED_IN);
  }

  requireOrg(): NamedRef {
    this.requireLogin();
    if (!this.config.org) throw new CliError(NO_ORG);
    return this.config.org;
  }

  requireSpace(): { org: NamedRef; space: NamedRef } {
    const org = this.requireOrg();
    if (!this.config.space) throw new CliError(NO_SPACE);
    return { org, space: this.config.space };
  }

  /** "as admin" / "in org o / space s as admin", for the status lines cf prints before it works. */
  who(): string {
    return this.config.username ?? 'unknown user';
  }

  /** Saves tokens from a grant (login or refresh). */
  keepTokens(tokens: TokenSet): void {
    this.config.accessToken = tokens.access_token;
    if (tokens.refresh_token) this.config.refreshToken = tokens.refresh_token;
    this.client.token = tokens.access_token;
  }

  /** Trades the refresh token for a new access token and saves it; a refused refresh ends the session. */
  async refresh(): Promise<void> {
    const { refreshToken, loginUrl } = this.config;
    if (!refreshToken) throw new CliError(NOT_LOGGED_IN);
    try {
      this.keepTokens(await requestToken(loginUrl ?? this.api, { grant_type: 'refresh_token', refresh_token: refreshToken }, this.io.fetch));
    } catch (err) {
      if (!(err instanceof LoginError)) throw err;
      delete this.config.accessToken;
      delete this.config.refreshToken;
      await this.save();
      throw new CliError("Your login has expired. Use 'kiln login' to log in again.");
    }
    await this.save();
  }

  /** fetch with the saved token, refreshed as needed (for code that brings its own ApiClient, like push). */
  readonly fetch: FetchLike = (url, init) => this.authorizedFetch(this.io.fetch ?? ((u, i) => fetch(u, i)), url, init);

  private async authorizedFetch(base: FetchLike, url: string, init: RequestInit = {}): Promise<Response> {
    if (!this.config.accessToken) return base(url, init);
    const exp = tokenExpiry(this.config.accessToken);
    // A minute of slack for clock differences and slow requests.
    if (exp !== undefined && exp - 60 < Date.now() / 1000 && this.config.refreshToken) await this.refresh();
    const send = () => base(url, { ...init, headers: { ...(init.headers as Record<string, string>), authorization: `bearer ${this.config.accessToken}` } });
    const res = await send();
    if (res.status !== 401 || !this.config.refreshToken) return res;
    await res.body?.cancel();
    await this.refresh();
    return send();
  }
}

/** Turns any error a command throws into the line the user sees. */
export function describeError(err: unknown, api: string | undefined): string {
  if (err instanceof CliError || err instanceof LoginError) return err.message;
  if (err instanceof NetworkError) {
    return `Cannot reach Kiln at ${api ?? 'the API'} (${err.message.replace(/^.*?: /, '')}). Is it running? Start it with 'npm start', or point the CLI elsewhere with 'kiln login -a URL'.`;
  }
  if (err instanceof CfApiError) {
    if (err.status === 401) return "The server did not accept your login. Use 'kiln login' to log in again.";
    const first = err.errors[0];
    if (first?.detail) return `${first.detail}${first.title ? ` (${first.title})` : ''}`;
    return err.message;
  }
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}
