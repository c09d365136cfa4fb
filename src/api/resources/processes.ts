import type { Context } from 'hono';
import { badQuery } from '../../domain/errors.ts';
import type { ListParams } from '../../domain/list-params.ts';
import { parseInstanceIndex, REDACTED, REDACTED_IN_LISTS, ScaleProcessSchema, UpdateProcessSchema } from '../../domain/processes.ts';
import { detectedCommands } from '../../services/apps.ts';
import { findVisibleApp } from '../../services/app-scope.ts';
import type { Ctx } from '../../services/context.ts';
import * as processes from '../../services/processes.ts';
import { metadataOf, metadataOfMany } from '../../services/metadata-reads.ts';
import type { Row } from '../../store/schema.ts';
import type { Api, AppDeps, Env } from '../context.ts';
import { readJson } from '../cf/body.ts';
import { pagination } from '../cf/pagination.ts';
import { listParams, queryOf, serviceCtx as ctxOf } from '../cf/respond.ts';
import { presentInstanceStats, presentInstanceSummary, presentProcess } from '../presenters/process.ts';

const EMBEDS = ['process_instances'];

/** Whether `embed=process_instances` was asked for (400 for anything else). */
function wantsInstances(embed: string | undefined): boolean {
  if (embed === undefined) return false;
  for (const e of embed.split(',')) {
    if (!EMBEDS.includes(e)) {
      throw badQuery(`Invalid embedded resource: '${e}'. Valid embedded resources are: ${EMBEDS.map((x) => `'${x}'`).join(', ')}`);
    }
  }
  return true;
}

export function registerProcesses(app: Api, deps: AppDeps): void {
  /** A list page: command is always redacted in lists (CONVENTIONS.md §2), even for admins. */
  async function renderProcessList(c: Context<Env>, params: ListParams, page: { rows: Array<Row<'processes'>>; total: number }) {
    const embed = wantsInstances(params.params.embed);
    // Independent reads: side by side on PostgreSQL's pool.
    const [owners, metadata] = await Promise.all([
      processes.appsOf(deps, page.rows),
      metadataOfMany(deps, 'processes', page.rows.map((p) => p.guid)),
    ]);
    // c.get, not c.var: the latter copies every variable into a new object on each access.
    const linker = c.get('linker');
    const resources = [];
    for (const p of page.rows) {
      const instances = embed ? await processes.instanceReports(deps.observed, p, { usage: false }) : undefined;
      resources.push(
        presentProcess(p, metadata.get(p.guid), { app: owners.get(p.app_guid), command: { show: false, redaction: REDACTED_IN_LISTS }, instances }, linker),
      );
    }
    return c.json({ pagination: pagination(linker, c.req.path, params, page.total), resources });
  }

  /** A single process: its command is shown to secret readers, else redacted. */
  async function renderOne(c: Context<Env>, ctx: Ctx, scope: processes.ProcessScope, embed: boolean, status: 200 | 202 = 200) {
    const { process } = scope;
    const show = await processes.canSeeCommand(ctx, scope);
    const detected = show ? (await detectedCommands(deps, [scope.app])).get(scope.app.guid)?.[process.type] : undefined;
    const metadata = await metadataOf(deps, 'processes', process.guid);
    const instances = embed ? await processes.instanceReports(deps.observed, process, { usage: false }) : undefined;
    const command = show ? ({ show: true, detected } as const) : ({ show: false, redaction: REDACTED } as const);
    return c.json(presentProcess(process, metadata, { app: scope.app, command, instances }, c.var.linker), status);
  }

  async function renderStats(c: Context<Env>, scope: processes.ProcessScope) {
    const reports = await processes.processStats(scope, deps.observed);
    return c.json({ resources: reports.map((i) => presentInstanceStats(scope.process, i)) });
  }

  const byGuid = (c: Context<Env>) => processes.findVisibleProcess(ctxOf(c, deps), c.req.param('guid')!);
  const byType = (c: Context<Env>) => processes.findAppProcess(ctxOf(c, deps), c.req.param('guid')!, c.req.param('type')!);

  // ---- /v3/processes ----

  app.get('/v3/processes', async (c) => {
    const params = listParams(c, processes.PROCESS_LIST);
    wantsInstances(params.params.embed);
    const page = await processes.listProcesses(ctxOf(c, deps), params);
    return renderProcessList(c, params, page);
  });

  app.get('/v3/processes/:guid', async (c) => {
    const embed = wantsInstances(queryOf(c, ['embed']).embed);
    const ctx = ctxOf(c, deps);
    return renderOne(c, ctx, await processes.findVisibleProcess(ctx, c.req.param('guid')), embed);
  });

  app.patch('/v3/processes/:guid', async (c) => {
    const input = await readJson(c, UpdateProcessSchema);
    const ctx = ctxOf(c, deps);
    const scope = await byGuid(c);
    const { process } = await processes.updateProcess(ctx, scope, input);
    return renderOne(c, ctx, { ...scope, process }, false);
  });

  app.post('/v3/processes/:guid/actions/scale', async (c) => {
    const input = await readJson(c, ScaleProcessSchema);
    const ctx = ctxOf(c, deps);
    const scope = await byGuid(c);
    const process = await processes.scaleProcess(ctx, scope, input);
    return renderOne(c, ctx, { ...scope, process }, false, 202);
  });

  app.get('/v3/processes/:guid/stats', async (c) => {
    queryOf(c);
    return renderStats(c, await byGuid(c));
  });

  app.get('/v3/processes/:guid/process_instances', async (c) => {
    queryOf(c);
    const scope = await byGuid(c);
    const reports = await processes.instanceReports(deps.observed, scope.process, { usage: false });
    const self = `/v3/processes/${scope.process.guid}`;
    return c.json({
      resources: reports.map(presentInstanceSummary),
      links: { self: c.var.linker.link(`${self}/process_instances`), process: c.var.linker.link(self) },
    });
  });

  app.delete('/v3/processes/:guid/instances/:index', async (c) => {
    queryOf(c);
    const scope = await byGuid(c);
    await processes.terminateInstance(ctxOf(c, deps), scope, parseInstanceIndex(c.req.param('index')), deps.observed);
    return c.body(null, 204);
  });

  // ---- /v3/apps/:guid/processes ----

  app.get('/v3/apps/:guid/processes', async (c) => {
    const params = listParams(c, processes.APP_PROCESS_LIST);
    wantsInstances(params.params.embed);
    const ctx = ctxOf(c, deps);
    const { app: owner } = await findVisibleApp(ctx, c.req.param('guid'));
    const page = await processes.listProcesses(ctx, params, owner.guid);
    return renderProcessList(c, params, page);
  });

  app.get('/v3/apps/:guid/processes/:type', async (c) => {
    const embed = wantsInstances(queryOf(c, ['embed']).embed);
    return renderOne(c, ctxOf(c, deps), await byType(c), embed);
  });

  app.patch('/v3/apps/:guid/processes/:type', async (c) => {
    const input = await readJson(c, UpdateProcessSchema);
    const ctx = ctxOf(c, deps);
    const scope = await byType(c);
    const { process } = await processes.updateProcess(ctx, scope, input);
    return renderOne(c, ctx, { ...scope, process }, false);
  });

  app.post('/v3/apps/:guid/processes/:type/actions/scale', async (c) => {
    const input = await readJson(c, ScaleProcessSchema);
    const ctx = ctxOf(c, deps);
    const scope = await byType(c);
    const process = await processes.scaleProcess(ctx, scope, input);
    return renderOne(c, ctx, { ...scope, process }, false, 202);
  });

  app.get('/v3/apps/:guid/processes/:type/stats', async (c) => {
    queryOf(c);
    return renderStats(c, await byType(c));
  });

  app.delete('/v3/apps/:guid/processes/:type/instances/:index', async (c) => {
    queryOf(c);
    const scope = await byType(c);
    await processes.terminateInstance(ctxOf(c, deps), scope, parseInstanceIndex(c.req.param('index')), deps.observed);
    return c.body(null, 204);
  });

  // GET /v3/processes/:guid/sidecars and /v3/apps/:guid/sidecars live in sidecars.ts.
}
