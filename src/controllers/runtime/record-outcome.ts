import { clearConditions, conditionsOf, generationOf, recordStatus, type Condition, type ConditionKind } from '../../store/conditions.ts';
import type { Store } from '../../store/store.ts';
import type { ReconcileOutcome } from './outcomes.ts';

/** A condition a reconcile recorded: of its own resource, or of another one (`of`). */
export interface RecordedCondition {
  condition: Condition;
  of?: { kind: ConditionKind; guid: string };
}

export interface Outcome {
  /** The reconciler's resource kind, when its keys are resource guids. */
  kind: ConditionKind | undefined;
  key: string;
  /** The resource's generation when the reconcile started (undefined: it did not exist, or no kind). */
  seen: { generation: number; observed?: number } | undefined;
  recorded: readonly RecordedCondition[];
  outcome: ReconcileOutcome;
}

/**
 * Writes what one reconcile concluded: the conditions it recorded (the last word on a type wins), the generation it
 * observed, and for a resource that is gone, the removal of its conditions. Runs after the reconcile, so a crash
 * in between only loses a report the next reconcile writes again.
 */
export async function recordOutcome(store: Store, o: Outcome): Promise<void> {
  const groups = new Map<string, { kind: ConditionKind; guid: string; conditions: Condition[] }>();
  const groupOf = (target: { kind: ConditionKind; guid: string }) => {
    const id = `${target.kind}\u0000${target.guid}`;
    let group = groups.get(id);
    if (!group) groups.set(id, (group = { ...target, conditions: [] }));
    return group;
  };
  for (const { condition, of } of o.recorded) {
    const target = of ?? (o.kind ? { kind: o.kind, guid: o.key } : undefined);
    if (!target) continue;
    const group = groupOf(target);
    group.conditions = [...group.conditions.filter((c) => c.type !== condition.type), condition];
  }
  const ownId = o.kind ? `${o.kind}\u0000${o.key}` : '';
  if (o.kind) {
    if (!o.seen || !(await generationOf(store.db, o.kind, o.key))) {
      groups.delete(ownId);
      await clearConditions(store, o.kind, o.key);
    } else if (o.outcome !== 'error') {
      // Even without a condition, a reconcile that ran to an outcome has observed this generation.
      const own = groupOf({ kind: o.kind, guid: o.key });
      if ((o.outcome === 'success' || o.outcome === 'requeue') && !own.conditions.some((c) => c.type === 'Ready')) {
        // A success clears the Ready=False a NotReady or TerminalError left, unless the reconciler said otherwise.
        const ready = (await conditionsOf(store.db, o.kind, o.key)).find((c) => c.type === 'Ready');
        if (ready?.status === 'False') own.conditions.push({ type: 'Ready', status: 'True', reason: 'Reconciled' });
      }
    }
  }
  for (const [id, g] of groups) {
    const at = id === ownId ? o.seen : await generationOf(store.db, g.kind, g.guid);
    if (at) await recordStatus(store, g.kind, g.guid, at, g.conditions);
  }
}
