import { APP_FEATURES, obfuscateBuildpack, parseJsonStringArray } from '../../domain/apps.ts';
import type { Metadata } from '../../domain/metadata.ts';
import type { AppFeature } from '../../services/apps.ts';
import type { Row } from '../../store/schema.ts';
import type { Linker } from '../cf/links.ts';
import { metadataOf, toOne } from '../cf/presenter.ts';
import { cfTime } from '../cf/timestamps.ts';

export function presentLifecycle(app: Pick<Row<'apps'>, 'lifecycle_type' | 'lifecycle_buildpacks' | 'lifecycle_stack'>) {
  if (app.lifecycle_type === 'docker') return { type: 'docker', data: {} };
  return {
    type: app.lifecycle_type,
    data: {
      buildpacks: parseJsonStringArray(app.lifecycle_buildpacks).map(obfuscateBuildpack),
      stack: app.lifecycle_stack,
    },
  };
}

export function presentApp(app: Row<'apps'>, metadata: Metadata | undefined, l: Linker) {
  const self = `/v3/apps/${app.guid}`;
  return {
    guid: app.guid,
    created_at: cfTime(app.created_at),
    updated_at: cfTime(app.updated_at),
    name: app.name,
    state: app.state,
    lifecycle: presentLifecycle(app),
    relationships: {
      space: toOne(app.space_guid),
      // Apps render an unset current droplet as {"data": {"guid": null}} (CONVENTIONS.md §2).
      current_droplet: { data: { guid: app.droplet_guid } },
    },
    metadata: metadataOf(metadata),
    links: {
      self: l.link(self),
      environment_variables: l.link(`${self}/environment_variables`),
      space: l.link(`/v3/spaces/${app.space_guid}`),
      processes: l.link(`${self}/processes`),
      packages: l.link(`${self}/packages`),
      current_droplet: l.link(`${self}/droplets/current`),
      droplets: l.link(`${self}/droplets`),
      tasks: l.link(`${self}/tasks`),
      start: l.link(`${self}/actions/start`, 'POST'),
      stop: l.link(`${self}/actions/stop`, 'POST'),
      clear_buildpack_cache: l.link(`${self}/actions/clear_buildpack_cache`, 'POST'),
      revisions: l.link(`${self}/revisions`),
      deployed_revisions: l.link(`${self}/revisions/deployed`),
      features: l.link(`${self}/features`),
    },
  };
}

export const presentAppFeature = (f: AppFeature) => ({ name: f.name, description: APP_FEATURES[f.name], enabled: f.enabled });

export function presentEnvironmentVariables(appGuid: string, vars: Record<string, string>, l: Linker) {
  return {
    var: vars,
    links: { self: l.link(`/v3/apps/${appGuid}/environment_variables`), app: l.link(`/v3/apps/${appGuid}`) },
  };
}

export function presentCurrentDropletRelationship(appGuid: string, dropletGuid: string, l: Linker) {
  return {
    data: { guid: dropletGuid },
    links: {
      self: l.link(`/v3/apps/${appGuid}/relationships/current_droplet`),
      related: l.link(`/v3/apps/${appGuid}/droplets/current`),
    },
  };
}
