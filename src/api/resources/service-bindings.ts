import { z } from 'zod';
import { SERVICE_CREDENTIAL_BINDING_LIST, SERVICE_ROUTE_BINDING_LIST } from '../../domain/services.ts';
import { parseListParams, type ListSpec } from '../../domain/list-params.ts';
import * as bindings from '../../services/service-bindings.ts';
import { metadataOf } from '../../services/metadata-reads.ts';
import type { Context } from 'hono';
import type { Api, AppDeps, Env } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { listParams, queryOf, renderList, serviceCtx as ctxOf } from '../cf/respond.ts';
import { presentApp } from '../presenters/app.ts';
import { presentCredentialBinding, presentRouteBinding, presentServiceInstance } from '../presenters/service-instance.ts';

const AnyBody = z.record(z.string(), z.unknown());

/** The `include` of a single GET, validated like its list's. */
const singleInclude = (value: string | undefined, spec: ListSpec) => parseListParams(new URLSearchParams(value === undefined ? {} : { include: value }), { include: spec.include ?? [] }).include;

export function registerServiceBindings(app: Api, deps: AppDeps): void {
  const timeoutMs = deps.config.brokerTimeoutSeconds * 1000;

  app.get('/v3/service_credential_bindings', async (c) => {
    const params = listParams(c, SERVICE_CREDENTIAL_BINDING_LIST);
    const page = await bindings.listCredentialBindings(ctxOf(c, deps), params);
    const included: Record<string, unknown[]> = {};
    if (params.include.includes('app')) included.apps = (await bindings.appsByGuid(deps, page.rows.map((b) => b.app_guid))).map((a) => presentApp(a, undefined, c.get('linker')));
    if (params.include.includes('service_instance')) {
      included.service_instances = (await bindings.instancesByGuid(deps, page.rows.map((b) => b.service_instance_guid))).map((i) => presentServiceInstance(i, undefined, c.get('linker')));
    }
    return renderList(c, deps, page, params, (b, m) => presentCredentialBinding(b, m, c.get('linker')), {
      resourceType: 'service_credential_bindings',
      ...(params.include.length ? { included } : {}),
    });
  });

  app.post('/v3/service_credential_bindings', async (c) => {
    const body = await readJson(c, AnyBody);
    const r = await bindings.createCredentialBinding(ctxOf(c, deps), body);
    if ('jobGuid' in r) {
      c.header('Location', c.get('linker').href(`/v3/jobs/${r.jobGuid}`));
      return c.body(null, 202);
    }
    return c.json(presentCredentialBinding(r.binding, r.metadata, c.get('linker')), 201);
  });

  app.get('/v3/service_credential_bindings/:guid', async (c) => {
    const include = singleInclude(queryOf(c, ['include']).include, SERVICE_CREDENTIAL_BINDING_LIST);
    const b = await bindings.getCredentialBinding(ctxOf(c, deps), c.req.param('guid'));
    const body = presentCredentialBinding(b, await metadataOf(deps, 'service_credential_bindings', b.guid), c.get('linker'));
    if (include.length === 0) return c.json(body);
    const included: Record<string, unknown[]> = {};
    if (include.includes('app')) included.apps = (await bindings.appsByGuid(deps, [b.app_guid])).map((a) => presentApp(a, undefined, c.get('linker')));
    if (include.includes('service_instance')) {
      included.service_instances = (await bindings.instancesByGuid(deps, [b.service_instance_guid])).map((i) => presentServiceInstance(i, undefined, c.get('linker')));
    }
    return c.json({ ...body, included });
  });

  const update = async (c: Context<Env>) => {
    const body = await readJson(c, AnyBody);
    const r = await bindings.updateCredentialBinding(ctxOf(c, deps), c.req.param('guid') ?? '', body);
    return c.json(presentCredentialBinding(r.binding, r.metadata, c.get('linker')));
  };
  app.patch('/v3/service_credential_bindings/:guid', update);
  app.put('/v3/service_credential_bindings/:guid', update);

  app.delete('/v3/service_credential_bindings/:guid', async (c) => {
    queryOf(c);
    const r = await bindings.deleteCredentialBinding(ctxOf(c, deps), c.req.param('guid'));
    if (r.jobGuid) {
      c.header('Location', c.get('linker').href(`/v3/jobs/${r.jobGuid}`));
      return c.body(null, 202);
    }
    return c.body(null, 204);
  });

  app.get('/v3/service_credential_bindings/:guid/details', async (c) => {
    queryOf(c);
    return c.json(await bindings.credentialBindingDetails(ctxOf(c, deps), c.req.param('guid')));
  });

  app.get('/v3/service_credential_bindings/:guid/parameters', async (c) => {
    queryOf(c);
    return c.json((await bindings.credentialBindingParameters(ctxOf(c, deps), c.req.param('guid'), timeoutMs)) as object);
  });

  app.get('/v3/service_route_bindings', async (c) => {
    const params = listParams(c, SERVICE_ROUTE_BINDING_LIST);
    const page = await bindings.listRouteBindings(ctxOf(c, deps), params);
    const included: Record<string, unknown[]> = {};
    if (params.include.includes('service_instance')) {
      included.service_instances = (await bindings.instancesByGuid(deps, page.rows.map((b) => b.service_instance_guid))).map((i) => presentServiceInstance(i, undefined, c.get('linker')));
    }
    return renderList(c, deps, page, params, (b, m) => presentRouteBinding(b, m, c.get('linker')), {
      resourceType: 'service_route_bindings',
      ...(params.include.length ? { included } : {}),
    });
  });

  app.post('/v3/service_route_bindings', async (c) => {
    const body = await readJson(c, AnyBody);
    const r = await bindings.createRouteBinding(ctxOf(c, deps), body);
    if (r.jobGuid) {
      c.header('Location', c.get('linker').href(`/v3/jobs/${r.jobGuid}`));
      return c.body(null, 202);
    }
    return c.json(presentRouteBinding(r.binding, r.metadata, c.get('linker')), 201);
  });

  app.get('/v3/service_route_bindings/:guid', async (c) => {
    const include = singleInclude(queryOf(c, ['include']).include, SERVICE_ROUTE_BINDING_LIST);
    const b = await bindings.getRouteBinding(ctxOf(c, deps), c.req.param('guid'));
    const body = presentRouteBinding(b, await metadataOf(deps, 'service_route_bindings', b.guid), c.get('linker'));
    if (include.length === 0) return c.json(body);
    const instances = await bindings.instancesByGuid(deps, [b.service_instance_guid]);
    return c.json({ ...body, included: { service_instances: instances.map((i) => presentServiceInstance(i, undefined, c.get('linker'))) } });
  });

  const updateRoute = async (c: Context<Env>) => {
    const body = await readJson(c, AnyBody);
    const r = await bindings.updateRouteBinding(ctxOf(c, deps), c.req.param('guid') ?? '', body);
    return c.json(presentRouteBinding(r.binding, r.metadata, c.get('linker')));
  };
  app.patch('/v3/service_route_bindings/:guid', updateRoute);
  app.put('/v3/service_route_bindings/:guid', updateRoute);

  app.delete('/v3/service_route_bindings/:guid', async (c) => {
    queryOf(c);
    const r = await bindings.deleteRouteBinding(ctxOf(c, deps), c.req.param('guid'));
    if (r.jobGuid) {
      c.header('Location', c.get('linker').href(`/v3/jobs/${r.jobGuid}`));
      return c.body(null, 202);
    }
    return c.body(null, 204);
  });

  app.get('/v3/service_route_bindings/:guid/parameters', async (c) => {
    queryOf(c);
    return c.json((await bindings.routeBindingParameters(ctxOf(c, deps), c.req.param('guid'), timeoutMs)) as object);
  });
}
