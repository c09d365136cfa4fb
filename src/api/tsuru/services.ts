import type { Context } from 'hono';
import { SERVICE_CREDENTIAL_BINDING_LIST, SERVICE_INSTANCE_LIST, SERVICE_OFFERING_LIST, SERVICE_PLAN_LIST } from '../../domain/services.ts';
import { findVisibleApp, type AppScope } from '../../services/app-scope.ts';
import type { Ctx } from '../../services/context.ts';
import { createCredentialBinding, deleteCredentialBinding, getCredentialBinding, listCredentialBindings } from '../../services/service-bindings.ts';
import { createServiceInstance, deleteServiceInstance, getServiceInstance, listServiceInstances, type InstanceRow } from '../../services/service-instances.ts';
import { listServiceOfferings, listServicePlans, type OfferingRow, type PlanRow } from '../../services/service-plans.ts';
import { loadMetadata } from '../../store/metadata.ts';
import type { Api, AppDeps, Env } from '../context.ts';
import { ctxOf, listAll, listTeams, listTsuruApps, resolveApp, tsuruOrg } from './mapping.ts';
import { followRestart, startRollingRestart, until } from './rollout.ts';
import { jsonList, jsonStream, param, readForm, route, TsuruError } from './wire.ts';

/**
 * Services (research/tsuru.md §6.3): service ⇄ CF service offering, plan ⇄ service plan, instance ⇄ managed
 * service instance in a team's space (user-provided ones are listed under `user-provided`), bind ⇄ an app
 * credential binding followed by Tsuru's restart by default (a rolling deployment, so the app's VCAP_SERVICES
 * carries the binding), unbind ⇄ deleting that binding. Broker calls are the CF side's jobs; the facade waits
 * for their outcome so the CLI sees success or the broker's error, as with Tsuru's synchronous service API.
 */

/** How long instance creation and binding wait for the broker's answer (the CF broker timeout is 60 s). */
const BROKER_WAIT_MS = 120_000;
const DESCRIPTION = 'tsuru.io/description';
/** Tsuru's name for the instances that have no offering. */
const USER_PROVIDED = 'user-provided';


/** The service catalogue the caller can see: offerings, and plans with their offering. */
async function catalogue(ctx: Ctx): Promise<{ offerings: OfferingRow[]; plans: Map<string, PlanRow & { offering: OfferingRow | undefined }> }> {
  const offerings = await listAll(SERVICE_OFFERING_LIST, { order_by: 'name' }, (p) => listServiceOfferings(ctx, p));
  const byGuid = new Map(offerings.map((o) => [o.guid, o]));
  const plans = await listAll(SERVICE_PLAN_LIST, { order_by: 'name' }, (p) => listServicePlans(ctx, p));
  return { offerings, plans: new Map(plans.map((p) => [p.guid, { ...p, offering: byGuid.get(p.service_offering_guid) }])) };
}

/** The Tsuru service name of an instance: its offering's, or `user-provided`. */
function serviceOf(instance: InstanceRow, plans: Awaited<ReturnType<typeof catalogue>>['plans']): string {
  if (instance.type === 'user-provided' || !instance.service_plan_guid) return USER_PROVIDED;
  return plans.get(instance.service_plan_guid)?.offering?.name ?? '';
}

/** The instance `name` of service `service` in one of the caller's teams (or the app's space when given); 404 otherwise. */
async function findInstance(ctx: Ctx, deps: AppDeps, service: string, name: string, spaceGuid?: string): Promise<InstanceRow> {
  const org = await tsuruOrg(ctx, deps);
  if (!org || name.includes(',')) throw new TsuruError(404, `Service instance ${name} not found.`);
  const query: Record<string, string> = { names: name, ...(spaceGuid ? { space_guids: spaceGuid } : { organization_guids: org.guid }) };
  const { plans } = await catalogue(ctx);
  const found = (await listAll(SERVICE_INSTANCE_LIST, query, (p) => listServiceInstances(ctx, p))).filter((i) => serviceOf(i, plans) === service);
  if (found.length === 0) throw new TsuruError(404, `Service instance ${name} not found.`);
  if (found.length > 1) throw new TsuruError(409, `Service instance name ${name} is ambiguous among your teams; use the CF API (/v3/service_instances?names=${name}).`);
  return found[0]!;
}

/** Presents instances as Tsuru's service instance model, with their bound apps, team and description. */
async function presenter(ctx: Ctx, deps: AppDeps, instances: InstanceRow[], plans: Awaited<ReturnType<typeof catalogue>>['plans']) {
  const teams = new Map((await listTeams(ctx, deps)).map((t) => [t.guid, t.name]));
  const appNames = new Map((await listTsuruApps(ctx, deps)).apps.map((a) => [a.guid, a.name]));
  const bindings =
    instances.length === 0
      ? []
      : await listAll(SERVICE_CREDENTIAL_BINDING_LIST, { service_instance_guids: instances.map((i) => i.guid).join(','), type: 'app' }, (p) => listCredentialBindings(ctx, p));
  const metadata = await loadMetadata(ctx.store.db, 'service_instances', instances.map((i) => i.guid));
  return (i: InstanceRow) => {
    const plan = i.service_plan_guid ? plans.get(i.service_plan_guid) : undefined;
    const team = teams.get(i.space_guid) ?? '';
    return {
      Id: i.guid,
      Name: i.name,
      ServiceName: serviceOf(i, plans),
      PlanName: plan?.name ?? '',
      PlanDescription: plan?.description ?? '',
      Apps: bindings.filter((b) => b.service_instance_guid === i.guid && b.app_guid && appNames.has(b.app_guid)).map((b) => appNames.get(b.app_guid!)!),
      Teams: team ? [team] : [],
      TeamOwner: team,
      Description: metadata.get(i.guid)?.annotations[DESCRIPTION] ?? '',
      Tags: JSON.parse(i.tags) as string[],
      Pool: '',
      // Where the CF side stands (`cf service`): the broker's last operation.
      Status: `${i.last_operation_type} ${i.last_operation_state}`,
    };
  };
}

/** The app's bound instances as app-info lists them: `{service, instance, plan}`. */
export async function serviceInstanceBinds(ctx: Ctx, appGuid: string): Promise<Array<{ service: string; instance: string; plan: string }>> {
  const bindings = await listAll(SERVICE_CREDENTIAL_BINDING_LIST, { app_guids: appGuid, type: 'app' }, (p) => listCredentialBindings(ctx, p));
  if (bindings.length === 0) return [];
  const { plans } = await catalogue(ctx);
  const guids = [...new Set(bindings.map((b) => b.service_instance_guid))];
  const instances = await listAll(SERVICE_INSTANCE_LIST, { guids: guids.join(',') }, (p) => listServiceInstances(ctx, p));
  return instances.map((i) => ({ service: serviceOf(i, plans), instance: i.name, plan: (i.service_plan_guid && plans.get(i.service_plan_guid)?.name) || '' }));
}

export function registerTsuruServices(app: Api, deps: AppDeps): void {
  // ---- list: GET /v3/service_instances, grouped by offering as `tsuru service list` prints them ----

  route(app, 'get', '/services/instances', async (c) => {
    const ctx = ctxOf(c, deps);
    const org = await tsuruOrg(ctx, deps);
    if (!org) return c.body(null, 204);
    const { offerings, plans } = await catalogue(ctx);
    const instances = await listAll(SERVICE_INSTANCE_LIST, { organization_guids: org.guid, order_by: 'name' }, (p) => listServiceInstances(ctx, p));
    const present = await presenter(ctx, deps, instances, plans);
    const groups = offerings.map((o) => ({ name: o.name, plans: [...plans.values()].filter((p) => p.service_offering_guid === o.guid).map((p) => p.name) }));
    if (instances.some((i) => serviceOf(i, plans) === USER_PROVIDED)) groups.push({ name: USER_PROVIDED, plans: [] });
    return jsonList(
      c,
      groups.map((g) => {
        const mine = instances.filter((i) => serviceOf(i, plans) === g.name);
        return { service: g.name, instances: mine.map((i) => i.name), plans: g.plans, service_instances: mine.map(present) };
      }),
    );
  });

  // ---- create: POST /v3/service_instances (type managed), waiting for the broker's first answer ----

  route(app, 'post', '/services/:service/instances', async (c) => {
    const ctx = ctxOf(c, deps);
    const form = await readForm(c);
    const service = param(c, 'service');
    const name = form.get('name') ?? '';
    if (name === '') throw new TsuruError(400, 'You must provide a name for the service instance.');
    const { offerings, plans } = await catalogue(ctx);
    const offering = offerings.find((o) => o.name === service);
    if (!offering) throw new TsuruError(404, `Service ${service} not found.`);
    const offered = [...plans.values()].filter((p) => p.service_offering_guid === offering.guid);
    const planName = form.get('plan');
    const plan = planName ? offered.find((p) => p.name === planName) : offered.length === 1 ? offered[0] : undefined;
    if (!plan) throw new TsuruError(400, planName ? `Plan ${planName} not found for service ${service}.` : `You must provide a plan: ${offered.map((p) => p.name).join(', ')}.`);
    const teams = await listTeams(ctx, deps);
    const owner = form.get('owner') || (teams.length === 1 ? teams[0]!.name : undefined);
    if (!owner) throw new TsuruError(400, 'You must provide a team (owner) to own the service instance.');
    const team = teams.find((t) => t.name === owner);
    if (!team) throw new TsuruError(404, `Team ${owner} not found.`);
    const description = form.get('description');
    const parameters = form.map('parameters');
    const created = await createServiceInstance(ctx, {
      type: 'managed',
      name,
      relationships: { space: { data: { guid: team.guid } }, service_plan: { data: { guid: plan.guid } } },
      tags: form.all('tag').filter((t) => t !== ''),
      ...(Object.keys(parameters).length > 0 ? { parameters } : {}),
      ...(description ? { metadata: { annotations: { [DESCRIPTION]: description } } } : {}),
    });
    const guid = created.jobGuid === undefined ? created.instance.guid : (await findInstance(ctx, deps, service, name, team.guid)).guid;
    // Tsuru's create answers once the service API did; here that is the broker's first answer (done, or accepted).
    const settled = await until(
      'the broker to answer',
      async () => {
        const inst = await getServiceInstance(ctx, guid);
        return inst.last_operation_state === 'initial' ? undefined : inst;
      },
      undefined,
      BROKER_WAIT_MS,
    );
    if (settled?.last_operation_state === 'failed') throw new TsuruError(400, `the service broker refused the instance: ${settled.last_operation_description ?? 'unknown error'}`);
    return c.body(null, 201);
  });

  // ---- info and remove: GET and DELETE /v3/service_instances/:guid ----

  route(app, 'get', '/services/:service/instances/:instance', async (c) => {
    const ctx = ctxOf(c, deps);
    const instance = await findInstance(ctx, deps, param(c, 'service'), param(c, 'instance'));
    const { plans } = await catalogue(ctx);
    const model = (await presenter(ctx, deps, [instance], plans))(instance);
    return c.json({ ...model, InstanceName: instance.name, CustomInfo: {} });
  });

  route(app, 'delete', '/services/:service/instances/:instance', async (c) => {
    const ctx = ctxOf(c, deps);
    const instance = await findInstance(ctx, deps, param(c, 'service'), param(c, 'instance'));
    const form = await readForm(c);
    const bound = await listAll(SERVICE_CREDENTIAL_BINDING_LIST, { service_instance_guids: instance.guid, type: 'app' }, (p) => listCredentialBindings(ctx, p));
    // Tsuru refuses to remove a bound instance unless told to unbind all; CF's delete job unbinds first.
    if (bound.length > 0 && !form.bool('unbindall')) throw new TsuruError(400, 'This service instance is bound to at least one app. Unbind them before removing it');
    await deleteServiceInstance(ctx, instance.guid, false);
    return jsonStream(c, async (p) => {
      p.say(`---- removing service instance ${instance.name} ----`);
      await until(
        'the broker to deprovision',
        async () => {
          try {
            const inst = await getServiceInstance(ctx, instance.guid);
            if (inst.last_operation_type === 'delete' && inst.last_operation_state === 'failed') {
              throw new TsuruError(400, `the service broker refused to remove the instance: ${inst.last_operation_description ?? 'unknown error'}`);
            }
            return undefined;
          } catch (err) {
            if (err instanceof TsuruError) throw err;
            return true; // gone
          }
        },
        undefined,
        BROKER_WAIT_MS,
      );
      p.say(`Service instance "${instance.name}" removed.`);
    });
  });

  // ---- bind / unbind: app credential bindings, then a rolling restart unless noRestart ----

  const bind = async (c: Context<Env>) => {
    const ctx = ctxOf(c, deps);
    const scope = await resolveApp(ctx, deps, param(c, 'app'));
    const instance = await findInstance(ctx, deps, param(c, 'service'), param(c, 'instance'), scope.app.space_guid);
    const form = await readForm(c);
    const parameters = form.map('parameters');
    const made = await createCredentialBinding(ctx, {
      type: 'app',
      relationships: { service_instance: { data: { guid: instance.guid } }, app: { data: { guid: scope.app.guid } } },
      ...(Object.keys(parameters).length > 0 ? { parameters } : {}),
    });
    const noRestart = form.bool('noRestart');
    return jsonStream(c, async (p) => {
      const binding = await until(
        'the broker to bind',
        async () => {
          const b = await getCredentialBinding(ctx, made.binding.guid);
          return b.last_operation_state === 'initial' || b.last_operation_state === 'in progress' ? undefined : b;
        },
        undefined,
        BROKER_WAIT_MS,
      );
      if (binding?.last_operation_state === 'failed') throw new TsuruError(400, `the service broker refused the binding: ${binding.last_operation_description ?? 'unknown error'}`);
      p.say(`Instance "${instance.name}" is now bound to the app "${scope.app.name}".`);
      p.say('\nThe following environment variables are available for use in your app:\n');
      p.say('- VCAP_SERVICES');
      await restartUnless(ctx, scope, noRestart, p.say, p.signal);
    });
  };
  route(app, 'put', '/services/:service/instances/:instance/apps/:app', bind);
  route(app, 'put', '/services/:service/instances/:instance/:app', bind);

  const unbind = async (c: Context<Env>) => {
    const ctx = ctxOf(c, deps);
    const scope = await resolveApp(ctx, deps, param(c, 'app'));
    const instance = await findInstance(ctx, deps, param(c, 'service'), param(c, 'instance'), scope.app.space_guid);
    const query = { app_guids: scope.app.guid, service_instance_guids: instance.guid, type: 'app' };
    const [binding] = await listAll(SERVICE_CREDENTIAL_BINDING_LIST, query, (p) => listCredentialBindings(ctx, p));
    if (!binding) throw new TsuruError(400, `Instance "${instance.name}" is not bound to the app "${scope.app.name}".`);
    await deleteCredentialBinding(ctx, binding.guid);
    const noRestart = (await readForm(c)).bool('noRestart');
    return jsonStream(c, async (p) => {
      await until(
        'the broker to unbind',
        async () => {
          try {
            const b = await getCredentialBinding(ctx, binding.guid);
            if (b.last_operation_type === 'delete' && b.last_operation_state === 'failed') {
              throw new TsuruError(400, `the service broker refused to unbind: ${b.last_operation_description ?? 'unknown error'}`);
            }
            return undefined;
          } catch (err) {
            if (err instanceof TsuruError) throw err;
            return true; // gone
          }
        },
        undefined,
        BROKER_WAIT_MS,
      );
      p.say(`Instance "${instance.name}" is not bound to the app "${scope.app.name}" anymore.`);
      await restartUnless(ctx, scope, noRestart, p.say, p.signal);
    });
  };
  route(app, 'delete', '/services/:service/instances/:instance/apps/:app', unbind);
  route(app, 'delete', '/services/:service/instances/:instance/:app', unbind);
}

/** Tsuru's restart by default after a bind or unbind, so VCAP_SERVICES reaches running units. */
async function restartUnless(ctx: Ctx, scope: AppScope, noRestart: boolean, say: (m: string) => void, gone: AbortSignal): Promise<void> {
  if (noRestart) return;
  const current = await findVisibleApp(ctx, scope.app.guid);
  await followRestart(ctx, current, await startRollingRestart(ctx, current), say, gone);
}
