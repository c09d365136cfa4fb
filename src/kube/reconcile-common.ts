import type { KubeObject, Plural } from './kube-client.ts';
import { condition, sortKeys, stamp, writeStatus, type Outcome, type SyncEnv } from './reconcile.ts';
import type { KubeCondition } from './schemas.ts';

/**
 * What the reconcilers of the Route, ServiceInstance and ServiceBinding kinds share: `Ready=False` with a reason,
 * spec errors as messages, and `Ready` from a CF `last_operation` (reconcile-route.ts,
 * reconcile-service-instance.ts, reconcile-service-binding.ts). As for Apps: what a resource makes carries the
 * ownership label and annotation, a CF object of the same name made by someone else is left alone
 * (`Ready=False, …OwnedElsewhere`), the finalizer keeps the resource until Kiln has deleted what it made, and Kiln
 * going away deletes nothing.
 */
export type Cond = Omit<KubeCondition, 'lastTransitionTime'>;

export interface Kind {
  kind: string;
  plural: Plural;
}

/** `Ready=False` with a reason, in status and (once per reason) as a Warning event. */
export async function blocked(env: SyncEnv, k: Kind, obj: KubeObject, reason: string, message: string, requeueAfterMs?: number, extra: Record<string, unknown> = {}): Promise<Outcome> {
  const generation = obj.metadata.generation ?? 1;
  if (condition(obj, 'Ready')?.reason !== reason) await env.client.event(k.kind, obj, 'Warning', reason, message);
  await writeStatus(env, k.plural, obj, {
    ...extra,
    observedGeneration: generation,
    lastError: message,
    conditions: stamp(obj, [{ type: 'Ready', status: 'False', reason, message, observedGeneration: generation }]),
  });
  return requeueAfterMs ? { requeueAfterMs } : undefined;
}

export const invalid = (err: { issues: { path: PropertyKey[]; message: string }[] }) => err.issues.map((i) => `spec.${i.path.map(String).join('.')}: ${i.message}`).join('; ');

/** `create` + `in progress` → `CreateInProgress` (a condition reason is CamelCase). */
const operationReason = (type: string, state: string) => `${type}_${state}`.replace(/(^|[ _-])(\w)/g, (_m, _s, c: string) => c.toUpperCase());

/** `Ready` from a CF `last_operation`: succeeded → True; initial/in progress/failed → False; requeue while it runs. */
export function operationStatus(what: string, op: { type: string; state: string; description: string | null }, generation: number): { ready: Cond; requeueAfterMs?: number } {
  const reason = operationReason(op.type, op.state);
  const message = op.description || `${what}: ${op.type} ${op.state}`;
  if (op.state === 'succeeded' && op.type !== 'delete') return { ready: { type: 'Ready', status: 'True', reason, message, observedGeneration: generation } };
  if (op.state === 'failed') return { ready: { type: 'Ready', status: 'False', reason, message, observedGeneration: generation }, requeueAfterMs: 10_000 };
  return { ready: { type: 'Ready', status: 'False', reason, message, observedGeneration: generation }, requeueAfterMs: 500 };
}

export const lastOperationOf = (row: { last_operation_type: string; last_operation_state: string; last_operation_description: string | null }) => ({
  type: row.last_operation_type,
  state: row.last_operation_state,
  ...(row.last_operation_description ? { description: row.last_operation_description } : {}),
});

export const sameJson = (a: unknown, b: unknown) => JSON.stringify(sortKeys(a ?? null)) === JSON.stringify(sortKeys(b ?? null));
