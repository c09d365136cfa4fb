import type { Kysely } from 'kysely';
import { notAuthorized, notFound } from '../domain/errors.ts';
import type { ListParams } from '../domain/list-params.ts';
import { listOptions, listPage, type Page } from '../store/list-query.ts';
import type { Database, Row } from '../store/schema.ts';
import { newGuid, type WriteTx } from '../store/store.ts';
import type { Ctx } from './context.ts';

export type UsageState = Row<'service_usage_events'>['state'];

/** Inserts one usage event for an instance as it stands in `db` (call before deleting the row). */
async function insertUsage(db: Kysely<Database>, now: string, instanceGuid: string, state: UsageState): Promise<void> {
  const r = await db
    .selectFrom('service_instances as i')
    .innerJoin('spaces as s', 's.guid', 'i.space_guid')
    .leftJoin('service_plans as p', 'p.guid', 'i.service_plan_guid')
    .leftJoin('service_offerings as o', 'o.guid', 'p.service_offering_guid')
    .leftJoin('service_brokers as b', 'b.guid', 'o.service_broker_guid')
    .select([
      'i.guid',
      'i.name',
      'i.type',
      's.guid as space_guid',
      's.name as space_name',
      's.organization_guid',
      'p.guid as plan_guid',
      'p.name as plan_name',
      'o.guid as offering_guid',
      'o.name as offering_name',
      'b.guid as broker_guid',
      'b.name as broker_name',
    ])
    .where('i.guid', '=', instanceGuid)
    .executeTakeFirst();
  if (!r) return;
  await db
    .insertInto('service_usage_events')
    .values({
      guid: newGuid(),
      created_at: now,
      state,
      space_guid: r.space_guid,
      space_name: r.space_name,
      organization_guid: r.organization_guid,
      service_instance_guid: r.guid,
      service_instance_name: r.name,
      service_instance_type: r.type === 'managed' ? 'managed_service_instance' : 'user_provided_service_instance',
      service_plan_guid: r.plan_guid,
      service_plan_name: r.plan_name,
      service_offering_guid: r.offering_guid,
      service_offering_name: r.offering_name,
      service_broker_guid: r.broker_guid,
      service_broker_name: r.broker_name,
    })
    .execute();
}

/** Records a usage event in the write that changes the instance (issue 9 §9). */
export function recordServiceUsage(tx: WriteTx, instanceGuid: string, state: UsageState): Promise<void> {
  return insertUsage(tx.db, tx.now, instanceGuid, state);
}

/** Only instances that were ever billed (created successfully) get a DELETED event. */
export async function recordDeletedUsage(tx: WriteTx, instanceGuid: string): Promise<void> {
  const i = await tx.db.selectFrom('service_instances').select(['last_operation_type', 'last_operation_state']).where('guid', '=', instanceGuid).executeTakeFirst();
  if (!i || (i.last_operation_type === 'create' && i.last_operation_state !== 'succeeded')) return;
  await insertUsage(tx.db, tx.now, instanceGuid, 'DELETED');
}

export async function listServiceUsageEvents(ctx: Ctx, params: ListParams): Promise<Page<Row<'service_usage_events'>>> {
  const f = params.filters;
  let q = ctx.store.db.selectFrom('service_usage_events').selectAll();
  // Everyone may list (Appendix B: ALL); only global readers see events.
  if (!ctx.access.global) return listPage(q.where('id', '<', 0), listOptions('service_usage_events', params));
  if (f.service_instance_types) q = q.where('service_instance_type', 'in', f.service_instance_types);
  if (f.service_offering_guids) q = q.where('service_offering_guid', 'in', f.service_offering_guids);
  if (f.after_guid) {
    const after = await ctx.store.db.selectFrom('service_usage_events').select('id').where('guid', '=', f.after_guid[0]!).executeTakeFirst();
    if (!after) throw notFound('After guid');
    q = q.where('id', '>', after.id);
  }
  // Timestamps only have a created_at: listPage's updated_at handling is never reached (updated_ats is rejected).
  return listPage(q, listOptions('service_usage_events', params));
}

export async function getServiceUsageEvent(ctx: Ctx, guid: string): Promise<Row<'service_usage_events'>> {
  if (!ctx.access.global) throw notFound('Service usage event');
  const e = await ctx.store.db.selectFrom('service_usage_events').selectAll().where('guid', '=', guid).executeTakeFirst();
  if (!e) throw notFound('Service usage event');
  return e;
}

/** Deletes every event and records one CREATED event per existing instance (CC's purge-and-reseed). */
export async function purgeAndReseedServiceUsage(ctx: Ctx): Promise<void> {
  if (!ctx.access.admin) throw notAuthorized();
  await ctx.store.write(async (tx) => {
    await tx.db.deleteFrom('service_usage_events').execute();
    const instances = await tx.db.selectFrom('service_instances').select('guid').orderBy('id').execute();
    for (const i of instances) await insertUsage(tx.db, tx.now, i.guid, 'CREATED');
  });
}
