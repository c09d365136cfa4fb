// Pieces the pages share: polling, state badges, breadcrumbs, the page header.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { html } from './html.js';
import { logout, session } from './api.js';

/**
 * Runs `load` now and every `intervalMs` while the page shows (one call at a time), and again when `key`
 * changes. Returns the newest data, the last error (cleared by a success) and `reload` for after an action.
 */
export function usePoll(load, intervalMs, key) {
  const [state, setState] = useState({ data: undefined, error: undefined });
  const loadRef = useRef(load);
  loadRef.current = load;
  const tick = useRef(() => Promise.resolve());
  useEffect(() => {
    let stopped = false;
    let timer;
    let running = null;
    const run = () => {
      clearTimeout(timer);
      running ??= loadRef
        .current()
        .then((data) => !stopped && setState({ data, error: undefined }))
        .catch((error) => !stopped && setState((s) => ({ data: s.data, error })))
        .finally(() => {
          running = null;
          if (!stopped) timer = setTimeout(run, intervalMs);
        });
      return running;
    };
    tick.current = run;
    setState({ data: undefined, error: undefined });
    run();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [key, intervalMs]);
  const reload = useCallback(() => tick.current(), []);
  return { ...state, reload };
}

const STATE_CLASS = {
  RUNNING: 'ok',
  STARTED: 'ok',
  STAGED: 'ok',
  STARTING: 'warn',
  PENDING: 'warn',
  DEPLOYING: 'warn',
  ACTIVE: 'warn',
  CRASHED: 'bad',
  DOWN: 'bad',
  FAILED: 'bad',
  STOPPED: 'off',
};

export function Badge({ state, label }) {
  return html`<span class=${`badge ${STATE_CLASS[state] ?? 'off'}`}>${label ?? state}</span>`;
}

/** "2/3" running instances, coloured by how healthy the process is. */
export function Health({ running, total, appState }) {
  let cls = 'ok';
  if (appState === 'STOPPED' || total === 0) cls = 'off';
  else if (running === 0) cls = 'bad';
  else if (running < total) cls = 'warn';
  return html`<span class=${`health ${cls}`} title=${`${running} of ${total} instances running`}><i></i>${running}/${total}</span>`;
}

export function Crumbs({ items }) {
  return html`<nav class="crumbs" aria-label="Breadcrumb">
    ${items.map((it, i) => html`${i > 0 ? html`<span class="sep">/</span>` : null}${it.href ? html`<a href=${it.href}>${it.label}</a>` : html`<span>${it.label}</span>`}`)}
  </nav>`;
}

export function ErrorNote({ error }) {
  if (!error) return null;
  return html`<div class="error" role="alert">${error.message ?? String(error)}</div>`;
}

export function Header() {
  const s = session();
  return html`<header class="top">
    <a class="brand" href="#/"><span class="logo" aria-hidden="true"></span>Kiln</a>
    <span class="spacer"></span>
    ${s ? html`<span class="user">${s.username}</span><button class="link" onClick=${() => logout()}>Log out</button>` : null}
  </header>`;
}
