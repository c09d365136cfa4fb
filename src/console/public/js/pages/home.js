// Orgs and their spaces: where to start.
import { html } from '../html.js';
import { listAll, v3 } from '../api.js';
import { Crumbs, ErrorNote, usePoll } from '../components.js';

async function loadOrgs() {
  const [orgs, spaces] = await Promise.all([listAll(v3('/v3/organizations', { order_by: 'name', per_page: 200 })), listAll(v3('/v3/spaces', { order_by: 'name', per_page: 200 }))]);
  return orgs.map((org) => ({ org, spaces: spaces.filter((s) => s.relationships.organization.data.guid === org.guid) }));
}

export function HomePage() {
  const { data, error } = usePoll(loadOrgs, 10000, 'orgs');
  return html`<${Crumbs} items=${[{ label: 'Organizations' }]} />
    <h1>Organizations</h1>
    <${ErrorNote} error=${error} />
    ${data === undefined && !error ? html`<p class="muted">Loading…</p>` : null}
    ${data?.length === 0 ? html`<p class="muted">You cannot see any organization yet. An admin can create one with <code>kiln create-org NAME</code>.</p>` : null}
    <div class="grid">
      ${data?.map(
        ({ org, spaces }) => html`<section class="card org" key=${org.guid}>
          <h2>${org.name}${org.suspended ? html` <span class="badge bad">suspended</span>` : null}</h2>
          ${spaces.length === 0 ? html`<p class="muted">No spaces you can see.</p>` : null}
          <ul class="spaces">
            ${spaces.map((s) => html`<li key=${s.guid}><a href=${`#/spaces/${s.guid}`}>${s.name}</a></li>`)}
          </ul>
        </section>`,
      )}
    </div>`;
}
