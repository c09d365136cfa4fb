import type { CommittedAudit } from '../services/audit.ts';

const STATE_CHANGES: Record<string, string> = {
  'audit.app.start': 'STARTED',
  'audit.app.stop': 'STOPPED',
  'audit.app.restart': 'STARTED',
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
  const state = STATE_CHANGES[e.type];
  if (state) return `Updated app with guid ${guid} (${JSON.stringify({ state })})`;
  const action = e.type.replace(/^audit\.app\./, '');
  const request = e.data.request;
  const detail = request && typeof request === 'object' && Object.keys(request).length > 0 ? ` ${JSON.stringify(request)}` : '';
  return `Updated app with guid ${guid}: ${action}${detail}`;
}
