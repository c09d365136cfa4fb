import type { Context } from 'hono';
import {
  CreateDomainSchema,
  parseRouteReservationQuery,
  ROUTE_RESERVATION_PARAMS,
  ShareDomainSchema,
  UpdateDomainSchema,
} from '../../domain/domains.ts';
import { badQuery } from '../../domain/errors.ts';
import type { ListParams } from '../../domain/list-params.ts';
import { platformNamesOf } from '../../router/api-hosts.ts';
import * as domains from '../../services/domains.ts';
import type { Page } from '../../store/list-query.ts';
import { metadataOf } from '../../services/metadata-reads.ts';
import type { Row } from '../../store/schema.ts';
import type { Api, AppDeps, Env } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { acceptedJob, listParams, queryOf, renderList, serviceCtx as ctxOf } from '../cf/respond.ts';
import { presentDomain, presentSharedOrganizations } from '../presenters/domain.ts';

export function registerDomains(app: Api, deps: AppDeps): void {
  const renderDomains = async (c: Context<Env>, page: Page<Row<'domains'>>, params: ListParams) => {
    const shared = await domains.visibleSharedOrgs(ctxOf(c, deps), page.rows.map((d) => d.guid));
    return renderList(c, deps, page, params, (d, m) => presentDomain(d, shared.get(d.guid) ?? [], m, c.get('linker')), {
      resourceType: 'domains',
    });
  };

  const renderOne = async (c: Context<Env>, v: domains.DomainView, status: 200 | 201 = 200) => {
    const metadata = await metadataOf(deps, 'domains', v.domain.guid);
    return c.json(presentDomain(v.domain, v.sharedOrganizationGuids, metadata, c.var.linker), status);
  };

  app.get('/v3/domains', async (c) => {
    const params = listParams(c, domains.DOMAIN_LIST);
    return renderDomains(c, await domains.listDomains(ctxOf(c, deps), params), params);
  });

  app.post('/v3/domains', async (c) => {
    const input = await readJson(c, CreateDomainSchema);
    const created = await domains.createDomain(ctxOf(c, deps), input, platformNamesOf(deps.config));
    return c.json(presentDomain(created.domain, created.sharedOrganizationGuids, created.metadata, c.var.linker), 201);
  });

  app.get('/v3/domains/:guid', async (c) => {
    queryOf(c);
    return renderOne(c, await domains.getDomain(ctxOf(c, deps), c.req.param('guid')));
  });

  app.patch('/v3/domains/:guid', async (c) => {
    const input = await readJson(c, UpdateDomainSchema);
    const updated = await domains.updateDomain(ctxOf(c, deps), c.req.param('guid'), input);
    return c.json(presentDomain(updated.domain, updated.sharedOrganizationGuids, updated.metadata, c.var.linker));
  });

  app.delete('/v3/domains/:guid', async (c) => {
    queryOf(c);
    return acceptedJob(c, await domains.deleteDomain(ctxOf(c, deps), c.req.param('guid')));
  });

  app.post('/v3/domains/:guid/relationships/shared_organizations', async (c) => {
    const orgGuids = await readJson(c, ShareDomainSchema);
    const shared = await domains.shareDomain(ctxOf(c, deps), c.req.param('guid'), orgGuids);
    return c.json(presentSharedOrganizations(shared));
  });

  app.delete('/v3/domains/:guid/relationships/shared_organizations/:org_guid', async (c) => {
    queryOf(c);
    await domains.unshareDomain(ctxOf(c, deps), c.req.param('guid'), c.req.param('org_guid'));
    return c.body(null, 204);
  });

  app.get('/v3/domains/:guid/route_reservations', async (c) => {
    const query = parseRouteReservationQuery(queryOf(c, ROUTE_RESERVATION_PARAMS));
    if (typeof query === 'string') throw badQuery(query);
    const matching = await domains.checkRouteReservation(ctxOf(c, deps), c.req.param('guid'), query);
    return c.json({ matching_route: matching });
  });

  app.get('/v3/organizations/:guid/domains', async (c) => {
    const params = listParams(c, domains.DOMAIN_LIST);
    return renderDomains(c, await domains.listOrganizationDomains(ctxOf(c, deps), c.req.param('guid'), params), params);
  });

  app.get('/v3/organizations/:guid/domains/default', async (c) => {
    queryOf(c);
    return renderOne(c, await domains.getDefaultDomain(ctxOf(c, deps), c.req.param('guid')));
  });
}
