import { CreateServicePlanSchema, UpdatePlanDefinitionSchema } from '../../domain/plan-definitions.ts';
import * as defs from '../../services/plan-definitions.ts';
import * as backups from '../../services/service-backups.ts';
import { readJson } from '../cf/body.ts';
import { pagination } from '../cf/pagination.ts';
import { acceptedJob, listParams, queryOf, serviceCtx as ctxOf } from '../cf/respond.ts';
import type { Api, AppDeps } from '../context.ts';
import { presentBackup, presentPlanDefinition, presentPlanDefinitionSchema } from '../presenters/service-extensions.ts';

/**
 * Service instance backups and plan definitions, Kiln extensions of the V3 API (docs/kiln-openapi.json; the broker
 * side in docs/service-extensions.md). Lists are not cached (renderList): schemas and definitions come from the
 * broker on each request.
 */
export function registerServiceExtensions(app: Api, deps: AppDeps): void {
  const timeoutMs = deps.config.brokerTimeoutSeconds * 1000;

  app.get('/v3/service_instances/:guid/backups', async (c) => {
    const params = listParams(c, backups.BACKUP_LIST);
    const page = await backups.listBackups(ctxOf(c, deps), c.req.param('guid'), params);
    return c.json({ pagination: pagination(c.get('linker'), c.req.path, params, page.total), resources: page.rows.map((b) => presentBackup(b, c.get('linker'))) });
  });

  app.post('/v3/service_instances/:guid/backups', async (c) => {
    queryOf(c);
    const { jobGuid } = await backups.createBackup(ctxOf(c, deps), c.req.param('guid'));
    return acceptedJob(c, jobGuid);
  });

  app.post('/v3/service_instances/:guid/backups/:backup_guid/actions/restore', async (c) => {
    queryOf(c);
    const { jobGuid } = await backups.restoreBackup(ctxOf(c, deps), c.req.param('guid'), c.req.param('backup_guid'));
    return acceptedJob(c, jobGuid);
  });

  app.get('/v3/plan_definition_schemas', async (c) => {
    const params = listParams(c, defs.SCHEMA_LIST);
    const page = await defs.listPlanDefinitionSchemas(ctxOf(c, deps), params, timeoutMs);
    return c.json({ pagination: pagination(c.get('linker'), c.req.path, params, page.total), resources: page.rows.map((v) => presentPlanDefinitionSchema(v, c.get('linker'))) });
  });

  app.get('/v3/plan_definition_schemas/:guid', async (c) => {
    queryOf(c);
    return c.json(presentPlanDefinitionSchema(await defs.getPlanDefinitionSchema(ctxOf(c, deps), c.req.param('guid'), timeoutMs), c.var.linker));
  });

  app.post('/v3/service_plans', async (c) => {
    queryOf(c);
    const input = await readJson(c, CreateServicePlanSchema);
    return acceptedJob(c, (await defs.createServicePlan(ctxOf(c, deps), input, timeoutMs)).jobGuid);
  });

  app.get('/v3/service_plan_definitions', async (c) => {
    const params = listParams(c, defs.DEFINITION_LIST);
    const page = await defs.listPlanDefinitions(ctxOf(c, deps), params, timeoutMs);
    return c.json({ pagination: pagination(c.get('linker'), c.req.path, params, page.total), resources: page.rows.map((v) => presentPlanDefinition(v, c.get('linker'))) });
  });

  app.get('/v3/service_plan_definitions/:guid', async (c) => {
    queryOf(c);
    return c.json(presentPlanDefinition(await defs.getPlanDefinition(ctxOf(c, deps), c.req.param('guid'), timeoutMs), c.var.linker));
  });

  app.patch('/v3/service_plan_definitions/:guid', async (c) => {
    queryOf(c);
    const input = await readJson(c, UpdatePlanDefinitionSchema);
    return acceptedJob(c, (await defs.updatePlanDefinition(ctxOf(c, deps), c.req.param('guid'), input, timeoutMs)).jobGuid);
  });

  app.delete('/v3/service_plan_definitions/:guid', async (c) => {
    queryOf(c);
    return acceptedJob(c, (await defs.deletePlanDefinition(ctxOf(c, deps), c.req.param('guid'))).jobGuid);
  });
}
