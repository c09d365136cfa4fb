import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config/config.ts';
import { startKiln } from '../src/server.ts';

const PASSWORD = 'bench-password-123';

/** Starts Kiln in this process on a free port with a fresh SQLite data dir, and logs in as admin. */
export async function startBenchKiln(name: string) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `kiln-bench-${name}-`));
  const config = loadConfig({ KILN_DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', KILN_ADMIN_PASSWORD: PASSWORD, LOG_LEVEL: 'silent', KILN_SANDBOX: process.env.KILN_SANDBOX });
  const kiln = await startKiln(config);
  const token = (await kiln.identity.passwordGrant('admin', PASSWORD)).access_token;
  const api = kiln.url;
  /** One API call as admin; a 4xx/5xx throws with the body, so a broken step fails the bench loudly. */
  async function call<T = Record<string, unknown>>(method: string, url: string, body?: unknown): Promise<Reply<T>> {
    const res = await fetch(`${api}${url}`, {
      method,
      headers: { Authorization: `bearer ${token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (res.status >= 400) throw new Error(`${method} ${url} -> ${res.status}: ${text}`);
    return { status: res.status, body: (text ? JSON.parse(text) : {}) as T, headers: res.headers };
  }
  return { dataDir, config, kiln, api, apiPort: new URL(api).port, token, call };
}

export interface Reply<T> {
  status: number;
  body: T;
  headers: Headers;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Calls `fn` every `everyMs` until it returns a value, failing after `timeoutMs`. */
export async function poll<T>(what: string, fn: () => Promise<T | undefined>, opts: { everyMs: number; timeoutMs: number }): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(opts.everyMs);
  }
}

/** Median of the numbers that are not NaN (NaN when none are). */
export function median(xs: number[]): number {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
