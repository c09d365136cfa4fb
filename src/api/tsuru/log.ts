import type { LogEnvelope } from '../../logs/log-store.ts';
import type { Api, AppDeps } from '../context.ts';
import { ctxOf, resolveApp, unitName } from './mapping.ts';
import { param, readForm, route, streamResponse, TsuruError } from './wire.ts';

/**
 * App log ⇄ Kiln's log-cache buffer of the app (what `cf logs` reads). Tsuru's log stream writes JSON arrays
 * of entries: first the last `lines`, then with `follow=1` new entries in batches (research/tsuru.md §3.4).
 */

/** How often followed lines are flushed as one array (tsuru batches up to 500 ms). */
const BATCH_MS = 500;
const MAX_LINES = 10_000;

interface TsuruLogEntry {
  Date: string;
  Message: string;
  Source: string;
  Name: string;
  Type: string;
  Unit: string;
}

/** `APP/PROC/WEB` → `web`; staging, router and API lines are Kiln's own notices (Tsuru's `kubernetes` source). */
function sourceOf(e: LogEnvelope): { source: string; process: string | undefined } {
  const m = /^APP\/PROC\/(.+)$/.exec(e.sourceType);
  if (m) return { source: m[1]!.toLowerCase(), process: m[1]!.toLowerCase() };
  if (e.sourceType.startsWith('APP/TASK/')) return { source: 'task', process: undefined };
  const named: Record<string, string> = { STG: 'staging', RTR: 'router', API: 'api', CELL: 'cell' };
  return { source: named[e.sourceType] ?? e.sourceType.toLowerCase(), process: undefined };
}

function present(appName: string, e: LogEnvelope): TsuruLogEntry {
  const { source, process } = sourceOf(e);
  return {
    Date: new Date(Number(e.timestamp / 1_000_000n)).toISOString(),
    Message: e.payload,
    Source: source,
    Name: appName,
    Type: process ? 'app' : 'tsuru',
    Unit: process ? unitName(appName, process, Number(e.instanceId) || 0) : '',
  };
}

export function registerTsuruLog(app: Api, deps: AppDeps): void {
  route(app, 'get', '/apps/:app/log', async (c) => {
    const ctx = ctxOf(c, deps);
    const form = await readForm(c, { queryOnly: true });
    const lines = form.int('lines');
    if (lines === undefined || lines < 0) throw new TsuruError(400, 'Parameter lines is mandatory.');
    const scope = await resolveApp(ctx, deps, param(c, 'app'));
    const source = form.get('source');
    const unit = form.get('unit');
    const invert = form.bool('invert-source');
    const follow = form.bool('follow');
    const name = scope.app.name;
    const keep = (e: TsuruLogEntry) => (!source || (e.Source === source) !== invert) && (!unit || e.Unit === unit);

    const wanted = Math.min(lines, MAX_LINES);
    const matching = (deps.logs?.read(scope.app.guid, { limit: MAX_LINES, descending: true }) ?? [])
      .reverse()
      .map((e) => present(name, e))
      .filter(keep);
    const recent = wanted === 0 ? [] : matching.slice(-wanted);

    return streamResponse(c, { contentType: 'application/x-json-stream', keepalive: '\n' }, async (w) => {
      w.raw(`${JSON.stringify(recent)}\n`);
      if (!follow || !deps.logs) return;
      const logs = deps.logs;
      let batch: TsuruLogEntry[] = [];
      const onLog = (e: LogEnvelope) => {
        if (e.sourceId !== scope.app.guid) return;
        const entry = present(name, e);
        if (keep(entry)) batch.push(entry);
      };
      logs.events.on('log', onLog);
      try {
        while (!w.closed) {
          await new Promise((r) => setTimeout(r, BATCH_MS).unref());
          if (batch.length === 0) continue;
          const out = batch;
          batch = [];
          // One single-entry array per line, as tsuru writes them.
          w.raw(out.map((e) => `${JSON.stringify([e])}\n`).join(''));
        }
      } finally {
        logs.events.off('log', onLog);
      }
    });
  });
}
