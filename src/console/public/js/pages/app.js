// One app: state and actions (start, stop, restart, rolling restart, scale), a running deployment's progress,
// instances with CPU/memory/uptime, routes, live logs and recent audit events.
import { useEffect, useRef, useState } from 'preact/hooks';
import { html } from '../html.js';
import { get, listAll, LogFollower, post, v3 } from '../api.js';
import { Badge, Crumbs, ErrorNote, Health, usePoll } from '../components.js';
import { ago, bytes, duration, megabytes, percent, routeHref } from '../format.js';

async function loadApp(guid) {
  const [app, processes, routes, deployments, events] = await Promise.all([
    get(v3(`/v3/apps/${guid}`, { include: 'space.organization' })),
    listAll(v3(`/v3/apps/${guid}/processes`, { per_page: 200 })),
    listAll(v3(`/v3/apps/${guid}/routes`, { per_page: 200 })),
    get(v3('/v3/deployments', { app_guids: guid, order_by: '-created_at', per_page: 1 })),
    get(v3('/v3/audit_events', { target_guids: guid, order_by: '-created_at', per_page: 12 })),
  ]);
  const stats = await Promise.all(processes.map((p) => get(`/v3/processes/${p.guid}/stats`).then((s) => s.resources ?? [], () => [])));
  const deployment = deployments.resources?.[0];
  return {
    app,
    space: app.included?.spaces?.[0],
    org: app.included?.organizations?.[0],
    processes: processes.map((p, i) => ({ process: p, stats: stats[i] })),
    routes,
    deployment,
    events: events.resources ?? [],
  };
}

export function AppPage({ guid }) {
  const { data, error, reload } = usePoll(() => loadApp(guid), 2000, guid);
  const [busy, setBusy] = useState('');
  const [actionError, setActionError] = useState(undefined);

  const act = (label, fn) => async () => {
    setBusy(label);
    setActionError(undefined);
    try {
      await fn();
      await reload();
    } catch (err) {
      setActionError(err);
    } finally {
      setBusy('');
    }
  };

  if (!data) {
    return html`<${Crumbs} items=${[{ label: 'Organizations', href: '#/' }, { label: '…' }]} />
      <${ErrorNote} error=${error} />${error ? null : html`<p class="muted">Loading…</p>`}`;
  }
  const { app, space, org, processes, routes, deployment } = data;
  const web = processes.find((p) => p.process.type === 'web');
  const active = deployment && deployment.status.value === 'ACTIVE' ? deployment : undefined;
  const running = web ? web.stats.filter((s) => s.state === 'RUNNING').length : 0;

  return html`<${Crumbs}
      items=${[{ label: 'Organizations', href: '#/' }, { label: org?.name ?? '…' }, { label: space?.name ?? '…', href: space ? `#/spaces/${space.guid}` : undefined }, { label: app.name }]}
    />
    <div class="title-row">
      <h1>${app.name}</h1>
      <${Badge} state=${app.state} />
      ${web ? html`<${Health} running=${running} total=${web.process.instances} appState=${app.state} />` : null}
      <span class="spacer"></span>
      <div class="actions">
        ${app.state === 'STOPPED'
          ? html`<button class="primary" disabled=${!!busy} onClick=${act('Starting', () => post(`/v3/apps/${guid}/actions/start`))}>Start</button>`
          : html`<button disabled=${!!busy} onClick=${act('Stopping', () => post(`/v3/apps/${guid}/actions/stop`))}>Stop</button>`}
        <button disabled=${!!busy} onClick=${act('Restarting', () => post(`/v3/apps/${guid}/actions/restart`))}>Restart</button>
        <button
          disabled=${!!busy || app.state !== 'STARTED' || !!active}
          title="Replace the instances one at a time, without downtime"
          onClick=${act('Deploying', () => post('/v3/deployments', { strategy: 'rolling', relationships: { app: { data: { guid } } } }))}
        >
          Rolling restart
        </button>
      </div>
    </div>
    ${busy ? html`<p class="muted busy">${busy}…</p>` : null}
    <${ErrorNote} error=${actionError ?? error} />
    ${active ? html`<${DeploymentProgress} deployment=${active} processes=${processes} onAction=${act} />` : null}
    <div class="columns">
      <section class="card">
        <h2>Instances</h2>
        ${processes.map(({ process, stats }) => html`<${ProcessInstances} key=${process.guid} process=${process} fresh=${!!active && active.new_processes.some((n) => n.guid === process.guid)} stats=${stats} stopped=${app.state === 'STOPPED'} busy=${!!busy} onScale=${(n) => act('Scaling', () => post(`/v3/processes/${process.guid}/actions/scale`, { instances: n }))()} />`)}
        ${processes.length === 0 ? html`<p class="muted">No processes yet: the app has not been staged.</p>` : null}
      </section>
      <section class="card">
        <h2>Routes</h2>
        ${routes.length === 0 ? html`<p class="muted">No routes: the app is not reachable over HTTP.</p>` : null}
        <ul class="route-list">
          ${routes.map((r) => html`<li key=${r.guid}><a href=${routeHref(r)} target="_blank" rel="noopener noreferrer">${routeHref(r)}</a></li>`)}
        </ul>
        ${deployment && !active ? html`<p class="muted small">Last deployment: ${deployment.strategy}, ${deployment.status.value.toLowerCase()} (${deployment.status.reason.toLowerCase()}) ${ago(deployment.updated_at)}</p>` : null}
      </section>
    </div>
    <${Logs} guid=${guid} />
    <${Events} events=${data.events} />`;
}

function ProcessInstances({ process, fresh, stats, stopped, busy, onScale }) {
  const [wanted, setWanted] = useState(String(process.instances));
  const shown = useRef(process.instances);
  // Follow changes made elsewhere (CLI, another tab) unless the user is editing the number.
  useEffect(() => {
    if (String(shown.current) === wanted) setWanted(String(process.instances));
    shown.current = process.instances;
  }, [process.instances]);
  const n = Number(wanted);
  const valid = Number.isInteger(n) && n >= 0 && wanted !== '';
  return html`<div class="process" data-process=${process.type}>
    <div class="process-head">
      <strong>${process.type}</strong>${fresh ? html` <span class="badge warn">new, deploying</span>` : null}
      <span class="muted">${process.instances} × ${megabytes(process.memory_in_mb)} memory, ${megabytes(process.disk_in_mb)} disk</span>
      <span class="spacer"></span>
      <form class="scale" onSubmit=${(e) => (e.preventDefault(), valid && onScale(n))}>
        <label>Instances <input type="number" min="0" step="1" name="instances" aria-label=${`${process.type} instances`} value=${wanted} onInput=${(e) => setWanted(e.currentTarget.value)} /></label>
        <button type="submit" disabled=${busy || !valid || n === process.instances}>Scale</button>
      </form>
    </div>
    ${stopped && stats.every((s) => s.state === 'DOWN')
      ? html`<p class="muted small">The app is stopped: no instance runs.</p>`
      : stats.length === 0
      ? html`<p class="muted small">No instances.</p>`
      : html`<table class="list instances">
          <thead><tr><th>#</th><th>State</th><th>CPU</th><th>Memory</th><th>Disk</th><th>Uptime</th><th>Details</th></tr></thead>
          <tbody>
            ${stats.map(
              (s) => html`<tr key=${s.index} data-instance=${s.index}>
                <td>${s.index}</td>
                <td><${Badge} state=${s.state} /></td>
                <td>${percent(s.usage?.cpu)}</td>
                <td>${s.usage ? `${bytes(s.usage.mem)} of ${bytes(s.mem_quota)}` : '–'}<${Meter} used=${s.usage?.mem} quota=${s.mem_quota} /></td>
                <td>${s.usage ? `${bytes(s.usage.disk)} of ${bytes(s.disk_quota)}` : '–'}</td>
                <td>${s.state === 'RUNNING' ? duration(s.uptime) : '–'}</td>
                <td class="muted small">${s.details ?? ''}</td>
              </tr>`,
            )}
          </tbody>
        </table>`}
  </div>`;
}

function Meter({ used, quota }) {
  if (!used || !quota) return null;
  const pct = Math.min(100, Math.round((used / quota) * 100));
  return html`<span class=${`meter ${pct > 90 ? 'bad' : pct > 70 ? 'warn' : ''}`} aria-hidden="true"><span style=${{ width: `${pct}%` }}></span></span>`;
}

function DeploymentProgress({ deployment, processes, onAction }) {
  const fresh = new Set(deployment.new_processes.map((p) => p.guid));
  const replacing = processes.filter((p) => fresh.has(p.process.guid));
  const old = processes.filter((p) => p.process.type === 'web' && !fresh.has(p.process.guid));
  const target = deployment.options?.web_instances ?? Math.max(1, ...old.map((p) => p.process.instances), ...replacing.map((p) => p.process.instances));
  const up = replacing.reduce((n, p) => n + p.stats.filter((s) => s.state === 'RUNNING').length, 0);
  const pct = Math.round((Math.min(up, target) / target) * 100);
  const steps = deployment.status.canary?.steps;
  const paused = deployment.status.reason === 'PAUSED';
  return html`<section class="card deployment" aria-label="Deployment">
    <div class="process-head">
      <strong>Deploying</strong>
      <span class="muted">${deployment.strategy}${steps ? `, step ${steps.current} of ${steps.total}` : ''} · ${deployment.status.reason.toLowerCase()} · started ${ago(deployment.created_at)}</span>
      <span class="spacer"></span>
      ${paused ? html`<button class="primary" onClick=${onAction('Continuing', () => post(`/v3/deployments/${deployment.guid}/actions/continue`))}>Continue</button>` : null}
      <button onClick=${onAction('Cancelling', () => post(`/v3/deployments/${deployment.guid}/actions/cancel`))}>Cancel</button>
    </div>
    <div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax=${target} aria-valuenow=${Math.min(up, target)}><span style=${{ width: `${pct}%` }}></span></div>
    <p class="small">${up} of ${target} new instances running</p>
    ${deployment.status.details?.error ? html`<p class="error">${deployment.status.details.error}</p>` : null}
  </section>`;
}

const MAX_LINES = 1000;

function Logs({ guid }) {
  const [lines, setLines] = useState([]);
  const [error, setError] = useState(undefined);
  const [paused, setPaused] = useState(false);
  const box = useRef(null);
  const pausedRef = useRef(paused);
  pausedRef.current = paused;

  useEffect(() => {
    const follower = new LogFollower(guid);
    let stopped = false;
    let timer;
    const add = (more) => more.length > 0 && setLines((old) => [...old, ...more].slice(-MAX_LINES));
    const tick = async () => {
      try {
        if (!pausedRef.current) add(await follower.poll());
        setError(undefined);
      } catch (err) {
        setError(err);
      }
      if (!stopped) timer = setTimeout(tick, 1000);
    };
    setLines([]);
    follower
      .recent()
      .then(add, setError)
      .finally(() => !stopped && (timer = setTimeout(tick, 1000)));
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [guid]);

  // Keep the newest line in view while the reader is at the bottom.
  const atBottom = useRef(true);
  useEffect(() => {
    const el = box.current;
    if (el && atBottom.current) el.scrollTop = el.scrollHeight;
  }, [lines]);
  const onScroll = (e) => {
    const el = e.currentTarget;
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
  };

  return html`<section class="card logs">
    <div class="process-head">
      <h2>Logs</h2>
      <span class="muted small">${paused ? 'paused' : 'live'}</span>
      <span class="spacer"></span>
      <button onClick=${() => setPaused(!paused)}>${paused ? 'Resume' : 'Pause'}</button>
      <button onClick=${() => setLines([])}>Clear</button>
    </div>
    <${ErrorNote} error=${error} />
    <div class="log-box" ref=${box} onScroll=${onScroll} role="log" aria-live="polite">
      ${lines.length === 0 ? html`<div class="muted">No log lines yet.</div>` : null}
      ${lines.map(
        (l) => html`<div class=${`line ${l.stream === 'ERR' ? 'err' : ''}`} key=${l.key}>
          <span class="ts">${l.time.toISOString().slice(11, 23)}</span>
          <span class=${`src src-${l.source.split('/')[0]}`}>[${l.source}]</span>
          <span class="text">${l.text}</span>
        </div>`,
      )}
    </div>
  </section>`;
}

function Events({ events }) {
  return html`<section class="card">
    <h2>Recent events</h2>
    ${events.length === 0
      ? html`<p class="muted">No events.</p>`
      : html`<table class="list events">
          <thead><tr><th>When</th><th>Event</th><th>By</th></tr></thead>
          <tbody>
            ${events.map(
              (e) => html`<tr key=${e.guid}>
                <td title=${e.created_at}>${ago(e.created_at)}</td>
                <td><code>${e.type}</code>${eventDetail(e)}</td>
                <td>${e.actor?.name || e.actor?.type || ''}</td>
              </tr>`,
            )}
          </tbody>
        </table>`}
  </section>`;
}

/** A few words from an event's data where they say more than its type (scale, crash). */
function eventDetail(e) {
  const req = e.data?.request;
  if (e.type === 'audit.app.process.scale' && req?.instances !== undefined) return html` <span class="muted small">→ ${req.instances} instances</span>`;
  if (e.type === 'audit.app.process.crash' && e.data?.exit_description) return html` <span class="muted small">${e.data.exit_description}</span>`;
  return null;
}
