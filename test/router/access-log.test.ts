import { describe, expect, it } from 'vitest';
import { formatAccessLog, formatAccessTime, rtrAccessLogger, type AccessLogEntry } from '../../src/router/access-log.ts';
import { LogStore } from '../../src/logs/log-store.ts';

describe('formatAccessTime', () => {
  it('formats UTC with milliseconds, reusing the date part only within the same second', () => {
    const base = Date.UTC(2024, 4, 1, 10, 0, 0);
    expect(formatAccessTime(base + 7)).toBe('2024-05-01T10:00:00.007+0000');
    expect(formatAccessTime(base + 999)).toBe('2024-05-01T10:00:00.999+0000');
    expect(formatAccessTime(base + 1_000)).toBe('2024-05-01T10:00:01.000+0000');
    expect(formatAccessTime(base + 42.9)).toBe('2024-05-01T10:00:00.042+0000');
    expect(formatAccessTime(Date.UTC(2031, 11, 31, 23, 59, 59, 50))).toBe('2031-12-31T23:59:59.050+0000');
    expect(formatAccessTime(base + 12)).toBe('2024-05-01T10:00:00.012+0000');
  });
});

describe('rtrAccessLogger', () => {
  const entry = (over: Partial<AccessLogEntry>): AccessLogEntry => ({
    startedAt: Date.UTC(2024, 4, 1, 10, 0, 0, 123),
    host: 'app.example.com',
    method: 'GET',
    url: '/path?q="x"',
    httpVersion: '1.1',
    status: 200,
    bytesIn: 0,
    bytesOut: 12,
    referer: undefined,
    userAgent: 'curl/8.0 “ü”',
    remoteAddr: '127.0.0.1:50000',
    backendAddr: '127.0.0.1:61001',
    xForwardedFor: '127.0.0.1',
    xForwardedProto: 'http',
    requestId: 'f7b1c2d0-0000-4000-8000-000000000000',
    responseTimeSeconds: 0.003,
    appGuid: 'app-guid',
    appIndex: 2,
    instanceId: 'instance-2',
    routerError: undefined,
    ...over,
  });

  it("puts an RTR line in the app's log buffer for requests that reached an app, and none for the others", () => {
    const logs = new LogStore();
    const log = rtrAccessLogger(logs);
    const served = entry({});
    log(served);
    log(entry({ appGuid: undefined, appIndex: undefined, instanceId: undefined, status: 404, routerError: 'unknown_route' }));
    const lines = logs.read('app-guid', { limit: 10, descending: false });
    expect(lines).toEqual([
      { sourceId: 'app-guid', sourceType: 'RTR', instanceId: '2', type: 'OUT', payload: formatAccessLog(served), timestamp: lines[0]!.timestamp },
    ]);
    expect(lines[0]!.payload).toContain('"GET /path?q=\\"x\\" HTTP/1.1" 200 0 12 "-" "curl/8.0 “ü”"');
  });
});
