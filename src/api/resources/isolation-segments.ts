import { z } from 'zod';
import { ISOLATION_SEGMENT_LIST } from '../../domain/isolation-segments.ts';
import * as segments from '../../services/isolation-segments.ts';
import { ORG_LIST } from '../../services/organizations.ts';
import { metadataOf } from '../../services/metadata-reads.ts';
import type { Api, AppDeps } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { listParams, queryOf, renderList, serviceCtx as ctxOf } from '../cf/respond.ts';
import { presentIsolationSegment, presentIsolationSegmentToOne, presentToMany } from '../presenters/isolation-segment.ts';
import { presentOrganization } from '../presenters/organization.ts';

/** Write bodies are checked by the services, after the permission checks upstream runs first. */
const AnyBody = z.record(z.string(), z.unknown());

export function registerIsolationSegments(app: Api, deps: AppDeps): void {
  app.get('/v3/isolation_segments', async (c) => {
    const params = listParams(c, ISOLATION_SEGMENT_LIST);
    const page = await segments.listIsolationSegments(ctxOf(c, deps), params);
    return renderList(c, deps, page, params, (s, m) => presentIsolationSegment(s, m, c.get('linker')), {
      resourceType: 'isolation_segments',
    });
  });

  app.post('/v3/isolation_segments', async (c) => {
    const body = await readJson(c, AnyBody);
    const { segment, metadata } = await segments.createIsolationSegment(ctxOf(c, deps), body);
    return c.json(presentIsolationSegment(segment, metadata, c.var.linker), 201);
  });

  app.get('/v3/isolation_segments/:guid', async (c) => {
    queryOf(c);
    const segment = await segments.getIsolationSegment(ctxOf(c, deps), c.req.param('guid'));
    const metadata = await metadataOf(deps, 'isolation_segments', segment.guid);
    return c.json(presentIsolationSegment(segment, metadata, c.var.linker));
  });

  app.patch('/v3/isolation_segments/:guid', async (c) => {
    const body = await readJson(c, AnyBody);
    const { segment, metadata } = await segments.updateIsolationSegment(ctxOf(c, deps), c.req.param('guid'), body);
    return c.json(presentIsolationSegment(segment, metadata, c.var.linker));
  });

  app.delete('/v3/isolation_segments/:guid', async (c) => {
    queryOf(c);
    await segments.deleteIsolationSegment(ctxOf(c, deps), c.req.param('guid'));
    return c.body(null, 204);
  });

  app.get('/v3/isolation_segments/:guid/organizations', async (c) => {
    const params = listParams(c, ORG_LIST);
    const page = await segments.listSegmentOrganizations(ctxOf(c, deps), c.req.param('guid'), params);
    return renderList(c, deps, page, params, (o, m) => presentOrganization(o, m, c.get('linker')), {
      resourceType: 'organizations',
    });
  });

  // Upstream ignores the query of the relationship endpoints (they are not paginated).
  app.get('/v3/isolation_segments/:guid/relationships/organizations', async (c) => {
    const { segment, guids } = await segments.listEntitledOrganizationGuids(ctxOf(c, deps), c.req.param('guid'));
    return c.json(presentToMany(`isolation_segments/${segment.guid}`, 'organizations', guids, c.var.linker, true));
  });

  app.post('/v3/isolation_segments/:guid/relationships/organizations', async (c) => {
    const body = await readJson(c, AnyBody);
    const { segment, guids } = await segments.entitleOrganizations(ctxOf(c, deps), c.req.param('guid'), body);
    return c.json(presentToMany(`isolation_segments/${segment.guid}`, 'organizations', guids, c.var.linker, true));
  });

  app.delete('/v3/isolation_segments/:guid/relationships/organizations/:org_guid', async (c) => {
    await segments.revokeOrganization(ctxOf(c, deps), c.req.param('guid'), c.req.param('org_guid'));
    return c.body(null, 204);
  });

  app.get('/v3/isolation_segments/:guid/relationships/spaces', async (c) => {
    const { segment, guids } = await segments.listAssignedSpaceGuids(ctxOf(c, deps), c.req.param('guid'));
    return c.json(presentToMany(`isolation_segments/${segment.guid}`, 'spaces', guids, c.var.linker, false));
  });

  // The to-one relationships live on orgs and spaces; their routers do not serve them, so they are here.
  app.get('/v3/organizations/:guid/relationships/default_isolation_segment', async (c) => {
    queryOf(c);
    const r = await segments.getOrgDefaultIsolationSegment(ctxOf(c, deps), c.req.param('guid'));
    return c.json(presentIsolationSegmentToOne(`organizations/${r.ownerGuid}`, 'default_isolation_segment', r.segmentGuid, c.var.linker));
  });

  app.patch('/v3/organizations/:guid/relationships/default_isolation_segment', async (c) => {
    const body = await readJson(c, AnyBody);
    const r = await segments.setOrgDefaultIsolationSegment(ctxOf(c, deps), c.req.param('guid'), body);
    return c.json(presentIsolationSegmentToOne(`organizations/${r.ownerGuid}`, 'default_isolation_segment', r.segmentGuid, c.var.linker));
  });

  app.get('/v3/spaces/:guid/relationships/isolation_segment', async (c) => {
    queryOf(c);
    const r = await segments.getSpaceIsolationSegment(ctxOf(c, deps), c.req.param('guid'));
    return c.json(presentIsolationSegmentToOne(`spaces/${r.ownerGuid}`, 'isolation_segment', r.segmentGuid, c.var.linker));
  });

  app.patch('/v3/spaces/:guid/relationships/isolation_segment', async (c) => {
    const body = await readJson(c, AnyBody);
    const r = await segments.setSpaceIsolationSegment(ctxOf(c, deps), c.req.param('guid'), body);
    return c.json(presentIsolationSegmentToOne(`spaces/${r.ownerGuid}`, 'isolation_segment', r.segmentGuid, c.var.linker));
  });
}
