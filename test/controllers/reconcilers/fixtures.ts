import type { DropletCache } from '../../../src/controllers/droplet-cache.ts';
import type { TestKiln } from '../../helpers/harness.ts';

/** A droplet cache that extracts nothing: the FakeRuntime never looks inside the directory it is given. */
export const noDropletFiles = { ensure: async (guid: string) => `/nonexistent/droplets/${guid}` } as unknown as DropletCache;

export interface AppFixture {
  app: string;
  web: string;
  space: string;
}

/** An org, a space and a STOPPED app in it with its web process, made through the API. */
export async function appFixture(t: TestKiln, name: string): Promise<AppFixture> {
  const org = await t.org(`${name}-org`);
  const space = await t.space(`${name}-space`, org.guid);
  const app = await t.admin.post('/v3/apps', { name, relationships: { space: { data: { guid: space.guid } } } });
  if (app.status !== 201) throw new Error(app.text);
  const procs = await t.admin.get(`/v3/apps/${app.body.guid}/processes`);
  const web = procs.body.resources.find((p: { type: string }) => p.type === 'web');
  return { app: app.body.guid, web: web.guid, space: space.guid };
}

/** A STAGED droplet with (pretend) bits, made the app's current droplet. */
export async function currentDroplet(t: TestKiln, appGuid: string, processTypes: Record<string, string> = { web: 'node server.js' }): Promise<string> {
  const guid = await t.droplet(appGuid, processTypes);
  await t.kiln.store.write((tx) => tx.updateStatus('droplets', guid, { blob_key: `droplets/${guid}` }));
  const res = await t.admin.patch(`/v3/apps/${appGuid}/relationships/current_droplet`, { data: { guid } });
  if (res.status !== 200) throw new Error(res.text);
  return guid;
}
