import type { Api, AppDeps } from '../context.ts';
import { queryOf, serviceCtx } from '../cf/respond.ts';
import { parseConditionsQuery, resourceConditions } from '../../services/conditions.ts';

/** Kiln's own API (not Cloud Foundry's), under `/kiln/v1`: same bearer tokens, roles and error format as `/v3`. */
export const KILN_API_PREFIX = '/kiln/v1';

/**
 * `GET /kiln/v1/conditions?kind=app&guid=…`: what the reconcilers last concluded about a resource — the answer to
 * "why isn't my app running?" (e.g. `Ready=False` with reason `DropletNotStaged` or `Crashing`).
 */
export function registerConditions(app: Api, deps: AppDeps): void {
  app.get(`${KILN_API_PREFIX}/conditions`, async (c) => {
    const q = parseConditionsQuery(queryOf(c, ['kind', 'guid']));
    const conditions = await resourceConditions(serviceCtx(c, deps), q);
    return c.json({
      kind: q.kind,
      guid: q.guid,
      conditions: conditions.map((x) => ({
        type: x.type,
        status: x.status,
        reason: x.reason,
        message: x.message,
        observed_generation: x.observedGeneration,
        last_transition_time: x.lastTransitionTime,
      })),
    });
  });
}
