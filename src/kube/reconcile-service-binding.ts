import { KilnError } from '../domain/errors.ts';
import { createCredentialBinding, deleteCredentialBinding } from '../services/service-bindings.ts';
import type { KubeObject } from './kube-client.ts';
import { ensureFinalizer, findSpace, ownedBy, ownership, problem, refOf, releaseFinalizer, stamp, writeStatus, type Outcome, type SyncEnv } from './reconcile.ts';
import { blocked, invalid, lastOperationOf, operationStatus, sameJson, type Kind } from './reconcile-common.ts';
import { ServiceBindingSpecSchema } from './schemas.ts';

/**
 * The `ServiceBinding` kind (`cf bind-service`) through createCredentialBinding/deleteCredentialBinding. CF
 * bindings cannot be changed: a new name or parameters unbind and bind again.
 */
const BINDING: Kind = { kind: 'ServiceBinding', plural: 'servicebindings' };

export async function reconcileServiceBinding(env: SyncEnv, obj: KubeObject): Promise<Outcome> {
  const db = env.ctx.store.db;
  const ref = refOf('ServiceBinding', obj);
  const generation = obj.metadata.generation ?? 1;
  const made = typeof obj.status?.guid === 'string' ? await db.selectFrom('service_credential_bindings').selectAll().where('guid', '=', obj.status.guid).executeTakeFirst() : undefined;
  const mine = made && (await ownedBy(env, 'service_credential_bindings', made.guid, ref)) ? made : undefined;
  const unbind = async (b: NonNullable<typeof mine>): Promise<Outcome> => {
    const deleting = b.last_operation_type === 'delete' && (b.last_operation_state === 'initial' || b.last_operation_state === 'in progress');
    if (!deleting) {
      try {
        await deleteCredentialBinding(env.ctx, b.guid);
      } catch (err) {
        if (!(err instanceof KilnError)) throw err;
        await blocked(env, BINDING, obj, 'DeleteRefused', problem(err), undefined, { guid: b.guid, lastOperation: lastOperationOf(b) });
        return { requeueAfterMs: 1000 };
      }
    }
    return { requeueAfterMs: 300 };
  };
  if (obj.metadata.deletionTimestamp) {
    if (mine) return unbind(mine);
    await releaseFinalizer(env, 'servicebindings', obj);
    return undefined;
  }
  if (await ensureFinalizer(env, 'servicebindings', obj)) return undefined;
  const parsed = ServiceBindingSpecSchema.safeParse(obj.spec ?? {});
  if (!parsed.success) return blocked(env, BINDING, obj, 'InvalidSpec', invalid(parsed.error));
  const spec = parsed.data;
  const space = await findSpace(env, spec.org, spec.space);
  if (!space) return blocked(env, BINDING, obj, 'SpaceNotFound', `space ${spec.org}/${spec.space} does not exist (declare it with a Space resource)`, 5000);
  const app = await db
    .selectFrom('apps')
    .select(['guid', 'name'])
    .where('space_guid', '=', space.guid)
    .where((eb) => eb(eb.fn('lower', ['name']), '=', spec.app.toLowerCase()))
    .executeTakeFirst();
  if (!app) return blocked(env, BINDING, obj, 'AppNotFound', `app ${spec.app} does not exist in ${spec.org}/${spec.space}`, 2000);
  // The instance: in the app's space, or shared into it.
  const inst = await db
    .selectFrom('service_instances')
    .selectAll()
    .where('name', '=', spec.instance)
    .where((eb) =>
      eb.or([
        eb('space_guid', '=', space.guid),
        eb('guid', 'in', eb.selectFrom('service_instance_shares').select('service_instance_guid').where('space_guid', '=', space.guid)),
      ]),
    )
    .orderBy('created_at')
    .executeTakeFirst();
  if (!inst) return blocked(env, BINDING, obj, 'InstanceNotFound', `service instance ${spec.instance} does not exist in ${spec.org}/${spec.space}`, 2000);

  let binding = await db.selectFrom('service_credential_bindings').selectAll().where('app_guid', '=', app.guid).where('service_instance_guid', '=', inst.guid).executeTakeFirst();
  // The binding this resource made is for another app or instance now, or its name or parameters changed:
  // bindings cannot be changed in CF, so it is unbound and made again.
  if (mine && (mine.guid !== binding?.guid || (mine.name ?? undefined) !== spec.name || (spec.parameters !== undefined && !sameJson(spec.parameters, env.ctx.store.secrets.openJson(mine.parameters_enc))))) {
    await unbind(mine);
    return { requeueAfterMs: 300 };
  }
  if (binding && !(await ownedBy(env, 'service_credential_bindings', binding.guid, ref))) {
    return blocked(env, BINDING, obj, 'BindingOwnedElsewhere', `app ${spec.app} is already bound to ${spec.instance} by a binding this resource did not create; it is left alone`, 10_000);
  }
  if (!binding) {
    if (inst.last_operation_type === 'create' && inst.last_operation_state !== 'succeeded') {
      return blocked(env, BINDING, obj, 'InstanceNotReady', `service instance ${spec.instance} is not created yet (${inst.last_operation_state})`, 1000);
    }
    try {
      const result = await createCredentialBinding(
        env.ctx,
        JSON.parse(
          JSON.stringify({
            type: 'app',
            name: spec.name,
            relationships: { service_instance: { data: { guid: inst.guid } }, app: { data: { guid: app.guid } } },
            parameters: spec.parameters,
            metadata: ownership(ref),
          }),
        ),
      );
      binding = result.binding;
    } catch (err) {
      if (!(err instanceof KilnError)) throw err;
      return blocked(env, BINDING, obj, 'BindingRejected', problem(err), 10_000);
    }
    await env.client.event('ServiceBinding', obj, 'Normal', 'Created', `app ${spec.app} bound to ${spec.instance}`);
  }
  const { ready, requeueAfterMs } = operationStatus(`binding of ${spec.app} to ${spec.instance}`, { type: binding.last_operation_type, state: binding.last_operation_state, description: binding.last_operation_description }, generation);
  await writeStatus(env, 'servicebindings', obj, {
    observedGeneration: generation,
    guid: binding.guid,
    lastOperation: lastOperationOf(binding),
    lastError: binding.last_operation_state === 'failed' ? ready.message : undefined,
    conditions: stamp(obj, [ready]),
  });
  return requeueAfterMs ? { requeueAfterMs } : undefined;
}
