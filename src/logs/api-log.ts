import type { CommittedAudit } from '../lifecycle/audit.ts';

const STATE_CHANGES: Record<string, string> = {
  'audit.app.start': 'STARTED',
  'audit.app.stop': 'STOPPED',
};

/**
 * The `API` log line Cloud Controller writes to an app's log stream when the app changes (shown by
 * `cf logs --recent`), or undefined for events that are not about an app.
 */
export function apiLogLine(e: CommittedAudit): string | undefined {
  if (e.target.type !== 'app') return undefined;
  const guid = e.target.guid;
  if (e.type === 'audit.app.create') return `Created app with guid ${guid}`;
  if (e.type === 'audit.app.delete-request') return `Deleted app with guid ${guid}`;
  if (e.type === 'audit.app.restart') return `Restarted app with guid ${guid}`;
  // Upstream interpolates the Ruby hash Diego sent; its inspect form is what `cf logs` shows.
  if (e.type === 'app.crash') return `App instance exited with guid ${guid} payload: ${rubyHash(e.data)}`;
  if (e.type === 'audit.app.process.crash') return `Process has crashed with type: "${e.actorName}"`;
  const state = STATE_CHANGES[e.type];
  if (state) return `Updated app with guid ${guid} (${JSON.stringify({ state })})`;
  const action = e.type.replace(/^audit\.app\./, '');
  const request = e.data.request;
  const detail = request && typeof request === 'object' && Object.keys(request).length > 0 ? ` ${JSON.stringify(request)}` : '';
  return `Updated app with guid ${guid}: ${action}${detail}`;
}

/** `{"key"=>value, …}`: how Ruby prints a hash of strings and numbers. */
function rubyHash(data: Record<string, unknown>): string {
  const value = (v: unknown) => (typeof v === 'number' || typeof v === 'boolean' ? String(v) : v === null ? 'nil' : JSON.stringify(v));
  return `{${Object.entries(data)
    .map(([k, v]) => `${JSON.stringify(k)}=>${value(v)}`)
    .join(', ')}}`;
}
