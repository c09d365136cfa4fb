import { connect } from 'node:net';
import { request } from 'node:http';
import type { HealthCheck } from '../runtime.ts';

/** Result of one health-check invocation; `detail` becomes part of the crash reason, worded like Diego's. */
export type CheckResult = { ok: true } | { ok: false; detail: string };

const DEFAULT_INVOCATION_TIMEOUT_S = 1;

export function startTimeoutMs(check: HealthCheck): number {
  return (check.timeoutSeconds ?? 60) * 1000;
}

function invocationTimeoutMs(check: HealthCheck): number {
  const seconds = check.type === 'process' ? undefined : check.invocationTimeoutSeconds;
  return (seconds ?? DEFAULT_INVOCATION_TIMEOUT_S) * 1000;
}

export function checkPort(host: string, port: number, timeoutMs: number): Promise<CheckResult> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (result: CheckResult): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(
      () => done({ ok: false, detail: `Failed to make TCP connection to port ${port}: timed out after ${timeoutMs / 1000}s` }),
      timeoutMs,
    );
    socket.once('connect', () => done({ ok: true }));
    socket.once('error', (err: NodeJS.ErrnoException) =>
      done({ ok: false, detail: `Failed to make TCP connection to port ${port}: ${describe(err)}` }),
    );
  });
}

export function checkHttp(host: string, port: number, endpoint: string, timeoutMs: number): Promise<CheckResult> {
  const path = endpoint.startsWith('/') ? endpoint : `/${endpoint}`;
  return new Promise((resolve) => {
    let settled = false;
    const done = (result: CheckResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(result);
    };
    const req = request({ host, port, path, method: 'GET', headers: { 'user-agent': 'kiln-healthcheck' }, agent: false }, (res) => {
      res.resume();
      const status = res.statusCode ?? 0;
      done(
        status >= 200 && status < 300
          ? { ok: true }
          : { ok: false, detail: `Failed to make HTTP request to '${path}' on port ${port}: received status code ${status}` },
      );
    });
    const timer = setTimeout(
      () => done({ ok: false, detail: `Failed to make HTTP request to '${path}' on port ${port}: timed out after ${timeoutMs / 1000}s` }),
      timeoutMs,
    );
    req.once('error', (err: NodeJS.ErrnoException) =>
      done({ ok: false, detail: `Failed to make HTTP request to '${path}' on port ${port}: ${describe(err)}` }),
    );
    req.end();
  });
}

/** Runs one invocation of the check. `process` checks are satisfied by the process being alive (the caller's job). */
export function runCheck(check: HealthCheck, host: string, port: number): Promise<CheckResult> {
  const timeout = invocationTimeoutMs(check);
  switch (check.type) {
    case 'port':
      return checkPort(host, port, timeout);
    case 'http':
      return checkHttp(host, port, check.endpoint || '/', timeout);
    case 'process':
      return Promise.resolve({ ok: true });
  }
}

function describe(err: NodeJS.ErrnoException): string {
  if (err.code === 'ECONNREFUSED') return 'connection refused';
  if (err.code === 'ECONNRESET') return 'connection reset by peer';
  return err.message;
}
