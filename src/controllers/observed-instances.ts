import type { Runtime } from '../runtime/runtime.ts';
import type { ObservedInstance, ObservedInstances } from '../services/processes.ts';

/** The API's view of running instances (`GET …/stats`, terminate), read from the runtime. */
export function observedFromRuntime(runtime: Pick<Runtime, 'listInstances' | 'stats' | 'restartInstance'>): ObservedInstances {
  return {
    async statsFor(processGuid) {
      const instances = runtime.listInstances({ processGuid });
      return Promise.all(
        instances.map(async (i): Promise<ObservedInstance> => {
          const stats = i.state === 'RUNNING' || i.state === 'STARTING' ? await runtime.stats(i.id) : undefined;
          return {
            index: i.index,
            state: i.state,
            instanceGuid: i.id,
            host: i.host,
            internalIp: i.host,
            uptime: stats ? Math.floor(stats.uptimeSeconds) : 0,
            since: Math.floor(i.since / 1000),
            routable: i.state === 'RUNNING',
            details: i.state === 'CRASHED' ? (i.lastExit?.reason ?? null) : null,
            ports: i.port !== undefined ? [{ external: i.port, internal: i.port }] : [],
            ...(stats
              ? { usage: { time: new Date().toISOString(), cpu: stats.cpu, mem: stats.memBytes, disk: stats.diskBytes, log_rate: 0 } }
              : {}),
          };
        }),
      );
    },
    async statesFor(processGuid) {
      return runtime.listInstances({ processGuid }).map((i) => ({ index: i.index, state: i.state, since: Math.floor(i.since / 1000) }));
    },
    async terminate(processGuid, index) {
      const targets = runtime.listInstances({ processGuid }).filter((i) => i.index === index);
      // The runtime replaces a restarted instance itself, as Diego replaces a terminated one.
      await Promise.all(targets.map((i) => runtime.restartInstance(i.id)));
      return targets.length > 0;
    },
  };
}
