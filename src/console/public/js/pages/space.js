// One space's apps: state, how many web instances run, and their routes.
import { html } from '../html.js';
import { get, listAll, v3 } from '../api.js';
import { Badge, Crumbs, ErrorNote, Health, usePoll } from '../components.js';
import { megabytes, routeHref } from '../format.js';

async function loadSpace(guid) {
  const [space, apps, processes, routes] = await Promise.all([
    get(v3(`/v3/spaces/${guid}`, { include: 'organization' })),
    listAll(v3('/v3/apps', { space_guids: guid, order_by: 'name', per_page: 200 })),
    listAll(v3('/v3/processes', { space_guids: guid, types: 'web', per_page: 200 })),
    listAll(v3('/v3/routes', { space_guids: guid, per_page: 200 })),
  ]);
  const stats = await Promise.all(processes.map((p) => get(`/v3/processes/${p.guid}/stats`).catch(() => ({ resources: [] }))));
  const rows = apps.map((app) => {
    const i = processes.findIndex((p) => p.relationships.app.data.guid === app.guid);
    const web = processes[i];
    const instances = i >= 0 ? stats[i].resources ?? [] : [];
    return {
      app,
      web,
      running: instances.filter((s) => s.state === 'RUNNING').length,
      routes: routes.filter((r) => r.destinations.some((d) => d.app.guid === app.guid)),
    };
  });
  return { space, org: space.included?.organizations?.[0], rows };
}

export function SpacePage({ guid }) {
  const { data, error } = usePoll(() => loadSpace(guid), 3000, guid);
  const org = data?.org;
  return html`<${Crumbs} items=${[{ label: 'Organizations', href: '#/' }, { label: org?.name ?? '…' }, { label: data?.space.name ?? '…' }]} />
    <h1>${data?.space.name ?? 'Space'} <span class="muted small">apps</span></h1>
    <${ErrorNote} error=${error} />
    ${data === undefined && !error ? html`<p class="muted">Loading…</p>` : null}
    ${data?.rows.length === 0 ? html`<div class="card empty"><p>No apps in this space yet. Push one with <code>npx kiln push examples/node-hello</code>.</p></div>` : null}
    ${data?.rows.length
      ? html`<table class="list apps">
          <thead><tr><th>Name</th><th>State</th><th>Instances</th><th>Memory</th><th>Routes</th></tr></thead>
          <tbody>
            ${data.rows.map(
              ({ app, web, running, routes }) => html`<tr key=${app.guid} data-app=${app.name}>
                <td><a href=${`#/apps/${app.guid}`}>${app.name}</a></td>
                <td><${Badge} state=${app.state} /></td>
                <td>${web ? html`<${Health} running=${running} total=${web.instances} appState=${app.state} />` : '–'}</td>
                <td>${web ? megabytes(web.memory_in_mb) : '–'}</td>
                <td class="routes">${routes.map((r) => html`<a key=${r.guid} href=${routeHref(r)} target="_blank" rel="noopener noreferrer">${r.url}</a>`)}</td>
              </tr>`,
            )}
          </tbody>
        </table>`
      : null}`;
}
