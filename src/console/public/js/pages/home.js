// Orgs and their spaces: where to start.
import { html } from '../html.js';
import { listAll, v3 } from '../api.js';
import { Crumbs, ErrorNote, usePoll } from '../components.js';

async function loadOrgs() {
  const [orgs, spaces, apps] = await Promise.all([
    listAll(v3('/v3/organizations', { order_by: 'name', per_page: 200 })),
    listAll(v3('/v3/spaces', { order_by: 'name', per_page: 200 })),
    listAll(v3('/v3/apps', { per_page: 500 })),
  ]);
  const count = (spaceGuid) => {
    const mine = apps.filter((a) => a.relationships.space.data.guid === spaceGuid);
    return { total: mine.length, started: mine.filter((a) => a.state === 'STARTED').length };
  };
  return orgs.map((org) => ({
    org,
    spaces: spaces.filter((s) => s.relationships.organization.data.guid === org.guid).map((space) => ({ space, apps: count(space.guid) })),
  }));
}

function appCount({ total, started }) {
  if (total === 0) return 'no apps';
  return `${total} app${total === 1 ? '' : 's'}, ${started} started`;
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
            ${spaces.map(({ space, apps }) => html`<li key=${space.guid}><a href=${`#/spaces/${space.guid}`}>${space.name}</a> <span class="muted small">${appCount(apps)}</span></li>`)}
          </ul>
        </section>`,
      )}
    </div>`;
}
