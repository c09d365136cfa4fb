import { CreateDeploymentSchema } from '../../domain/deployments.ts';
import { KilnError } from '../../domain/errors.ts';
import type { AppScope } from '../../services/app-scope.ts';
import type { Ctx } from '../../services/context.ts';
import { cancelDeployment, createDeployment, findVisibleDeployment } from '../../services/deployments.ts';
import { findAppProcess, instanceReports } from '../../services/processes.ts';
import type { AppDeps } from '../context.ts';
import { TsuruError } from './wire.ts';

/**
 * Tsuru's long operations as CF desired state plus a watch: the request records what it wants through the
 * services, then reads the store (and the runtime's view of instances) until it converges, reporting as it goes.
 * Nothing here survives a crash but the desired state itself; the reconcilers finish the work without the request.
 */

/** How long a streamed operation follows convergence before it reports a timeout (the change itself stands). */
export const CONVERGE_MS = 10 * 60_000;
const POLL_MS = 250;

/** Polls `fn` until it returns a value, the deadline passes (an error) or `signal` aborts (undefined). */
export async function until<T>(what: string, fn: () => Promise<T | undefined>, signal?: AbortSignal, timeoutMs = CONVERGE_MS): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (signal?.aborted) return undefined;
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new TsuruError(504, `timed out waiting for ${what}; the change stands and Kiln keeps converging`);
    await new Promise((r) => setTimeout(r, POLL_MS).unref());
  }
}

/**
 * Starts a rolling restart onto the app's current droplet (`cf restart --strategy rolling`): how Tsuru's restart-
 * by-default lands new env on running units without downtime. Called before a stream starts, so a refusal is a
 * plain status; undefined when the app was never deployed (nothing runs, nothing to restart).
 */
export async function startRollingRestart(ctx: Ctx, scope: AppScope): Promise<string | undefined> {
  if (!scope.app.droplet_guid) return undefined;
  const input = CreateDeploymentSchema.parse({ relationships: { app: { data: { guid: scope.app.guid } } }, strategy: 'rolling' });
  return (await createDeployment(ctx, input)).deployment.guid;
}

/**
 * Reports and follows what startRollingRestart began. `gone` aborts when the client leaves: following stops,
 * the restart goes on (Ctrl-C on env-set does not undo it).
 */
export async function followRestart(ctx: Ctx, scope: AppScope, deployment: string | undefined, say: (m: string) => void, gone?: AbortSignal): Promise<void> {
  if (deployment === undefined) {
    say('---- the app has not been deployed yet: nothing to restart ----');
    return;
  }
  say(`---- rolling restart of ${scope.app.name} (deployment ${deployment}) ----`);
  await followDeployment(ctx, deployment, say, gone ? { gone } : {});
}

/**
 * Follows a deployment to its end. `cancel` is a user's cancel (the deploy event's): the deployment is canceled
 * and rolled back, and that is reported as a failure. `gone` is the client leaving: following just stops.
 */
export async function followDeployment(ctx: Ctx, guid: string, say: (m: string) => void, signals: { cancel?: AbortSignal; gone?: AbortSignal } = {}): Promise<void> {
  const { cancel, gone } = signals;
  const either = cancel && gone ? AbortSignal.any([cancel, gone]) : (cancel ?? gone);
  let last = '';
  const finished = await until(
    'the deployment to finish',
    async () => {
      const { deployment: d } = await findVisibleDeployment(ctx, guid);
      const now = `${d.state}`;
      if (now !== last && now !== 'DEPLOYING') say(` ---> deployment ${d.state.toLowerCase()}`);
      last = now;
      return d.status_value === 'FINALIZED' ? d : undefined;
    },
    either,
  );
  if (!finished && !cancel?.aborted) return; // the client left; the deployment goes on
  if (!finished) {
    // Canceled by the caller: roll back as `cf cancel-deployment` does, then report it as the failure it is.
    try {
      await cancelDeployment(ctx, guid);
    } catch (err) {
      if (!(err instanceof KilnError)) throw err;
    }
    await until('the deployment to roll back', async () => {
      const { deployment: d } = await findVisibleDeployment(ctx, guid);
      return d.status_value === 'FINALIZED' ? d : undefined;
    });
    throw new TsuruError(400, 'deploy canceled by the user');
  }
  if (finished.state !== 'DEPLOYED') throw new TsuruError(500, `deployment ended ${finished.state.toLowerCase()} (${finished.status_reason.toLowerCase()})`);
  say(' ---> deployment finished');
}

/** Waits until every desired instance of the process runs, reporting each count change. */
export async function followUnits(ctx: Ctx, deps: Pick<AppDeps, 'observed'>, scope: AppScope, processType: string, say: (m: string) => void, signal?: AbortSignal): Promise<void> {
  let lastRunning = -1;
  await until(
    `units of ${processType} to be ready`,
    async () => {
      const { process } = await findAppProcess(ctx, scope.app.guid, processType);
      const observed = await instanceReports(deps.observed, process);
      const running = observed.filter((o) => o.state === 'RUNNING').length;
      const total = observed.length;
      if (running !== lastRunning) say(` ---> ${running} of ${process.instances} units of ${processType} ready`);
      lastRunning = running;
      return running === process.instances && total === process.instances ? true : undefined;
    },
    signal,
  );
}
