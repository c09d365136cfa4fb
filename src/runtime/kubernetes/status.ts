import type * as k8s from '@kubernetes/client-node';
import type { InstanceState, InstanceStatus, TaskStatus } from '../runtime.ts';
import { TASK_CANCELLED_REASON } from '../local/task.ts';
import {
  ANNOTATION_INSTANCE,
  ANNOTATION_PROCESS_TYPE,
  ANNOTATION_TASK_NAME,
  ANNOTATION_VERSION,
  APP_PORT,
  DROPLET_INIT_CONTAINER,
  LABEL_APP,
  LABEL_PROCESS,
  MAIN_CONTAINER,
} from './objects.ts';

/** Annotation Kiln puts on a task's Job before deleting it, so the cancel is told apart from a failure. */
export const ANNOTATION_CANCELLED = 'kiln.dev/cancelled';

/** CF's log source of an instance's process (APP/PROC/WEB). */
export const processSource = (pod: k8s.V1Pod): string => `APP/PROC/${(pod.metadata?.annotations?.[ANNOTATION_PROCESS_TYPE] ?? 'web').toUpperCase()}`;
export const taskSource = (obj: k8s.V1Pod | k8s.V1Job): string => `APP/TASK/${obj.metadata?.annotations?.[ANNOTATION_TASK_NAME] ?? ''}`;

const epoch = (t: Date | string | undefined): number | undefined => (t === undefined ? undefined : new Date(t).getTime());

/** Diego's wording of an exit: `APP/PROC/WEB: Exited with status 137 (out of memory)` when the kernel's OOM killer did it. */
export function exitReason(source: string, terminated: k8s.V1ContainerStateTerminated): string {
  if (terminated.reason === 'OOMKilled') return `${source}: Exited with status ${terminated.exitCode || 137} (out of memory)`;
  return `${source}: Exited with status ${terminated.exitCode}`;
}

/** The last finished incarnation of the main container, or of the droplet download when that is what fails. */
function lastTermination(pod: k8s.V1Pod): { source: string; terminated: k8s.V1ContainerStateTerminated } | undefined {
  const init = pod.status?.initContainerStatuses?.find((c) => c.name === DROPLET_INIT_CONTAINER);
  const initFailed = init?.lastState?.terminated ?? (init?.state?.terminated && init.state.terminated.exitCode !== 0 ? init.state.terminated : undefined);
  if (initFailed && !init?.state?.running && !(init?.state?.terminated?.exitCode === 0)) {
    return { source: 'CELL', terminated: { ...initFailed, reason: initFailed.reason ?? 'Error' } };
  }
  const main = pod.status?.containerStatuses?.find((c) => c.name === MAIN_CONTAINER);
  const terminated = main?.state?.terminated ?? main?.lastState?.terminated;
  return terminated ? { source: processSource(pod), terminated } : undefined;
}

/** What an instance's pod says about it, in the runtime's terms. */
export function instanceStatus(pod: k8s.V1Pod): InstanceStatus | undefined {
  const md = pod.metadata;
  const id = md?.annotations?.[ANNOTATION_INSTANCE];
  if (!md || !id) return undefined;
  const main = pod.status?.containerStatuses?.find((c) => c.name === MAIN_CONTAINER);
  const init = pod.status?.initContainerStatuses?.find((c) => c.name === DROPLET_INIT_CONTAINER);
  let state: InstanceState;
  if (md.deletionTimestamp) state = 'STOPPING';
  else if (pod.status?.phase === 'Failed' || pod.status?.phase === 'Succeeded') state = 'CRASHED';
  else if (main?.state?.running) state = main.ready ? 'RUNNING' : 'STARTING';
  else if (main?.state?.terminated || (main?.state?.waiting && main.lastState?.terminated)) state = 'CRASHED';
  else if (init && (init.restartCount ?? 0) > 0 && !init.state?.running) state = 'CRASHED';
  else state = 'STARTING';
  const last = lastTermination(pod);
  // restartCount counts restarts done; a container that exited and waits for its restart is one crash more.
  const pendingRestart = state === 'CRASHED' && (main?.state?.terminated !== undefined || main?.state?.waiting !== undefined) ? 1 : 0;
  const crashCount = Math.max(main?.restartCount ?? 0, init?.restartCount ?? 0) + pendingRestart;
  const index = Number(md.labels?.[`kiln.dev/index`] ?? 0);
  return {
    id,
    appGuid: md.labels?.[LABEL_APP] ?? '',
    processGuid: md.labels?.[LABEL_PROCESS] ?? '',
    version: md.annotations?.[ANNOTATION_VERSION] ?? '',
    index,
    state,
    host: pod.status?.podIP ?? '',
    port: APP_PORT,
    pid: undefined,
    since: epoch(main?.state?.running?.startedAt) ?? epoch(md.creationTimestamp) ?? Date.now(),
    crashCount,
    ...(last
      ? {
          lastExit: {
            code: last.terminated.exitCode ?? null,
            signal: null,
            at: epoch(last.terminated.finishedAt) ?? 0,
            reason: last.source === 'CELL' ? `failed to download the droplet: exited with status ${last.terminated.exitCode}` : exitReason(last.source, last.terminated),
          },
        }
      : {}),
  };
}

/** A task's state from its Job (conditions) and its pod (exit code, OOMKilled). */
export function taskStatus(id: string, job: k8s.V1Job, pod: k8s.V1Pod | undefined): TaskStatus {
  const conditions = job.status?.conditions ?? [];
  const done = (type: string) => conditions.some((c) => c.type === type && c.status === 'True');
  const main = pod?.status?.containerStatuses?.find((c) => c.name === MAIN_CONTAINER);
  const terminated = main?.state?.terminated;
  const exitCode = terminated?.exitCode;
  if (job.metadata?.annotations?.[ANNOTATION_CANCELLED]) {
    return { id, state: 'FAILED', failureReason: TASK_CANCELLED_REASON, ...(exitCode !== undefined ? { exitCode } : {}) };
  }
  if (done('Complete') || (job.status?.succeeded ?? 0) > 0) return { id, state: 'SUCCEEDED', exitCode: exitCode ?? 0 };
  if (done('Failed') || (job.status?.failed ?? 0) > 0) {
    const source = taskSource(job);
    const init = pod?.status?.initContainerStatuses?.find((c) => c.name === DROPLET_INIT_CONTAINER)?.state?.terminated;
    const failureReason = terminated
      ? exitReason(source, terminated)
      : init && init.exitCode !== 0
        ? `${source}: failed to start: the droplet download exited with status ${init.exitCode}`
        : `${source}: ${conditions.find((c) => c.type === 'Failed')?.message ?? 'the job failed'}`;
    return { id, state: 'FAILED', failureReason, ...(exitCode !== undefined ? { exitCode } : {}) };
  }
  return { id, state: 'RUNNING' };
}
