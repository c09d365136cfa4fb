/** The manifest of an existing app (`GET /v3/apps/:guid/manifest`, and the current side of a diff). */
import { formatLogRate, formatMegabytes } from './manifest-units.ts';

export interface ProcessState {
  type: string;
  command: string | null;
  instances: number;
  memoryInMb: number;
  diskInMb: number;
  logRateLimit: number;
  healthCheckType: string;
  healthCheckEndpoint: string | null;
  healthCheckInvocationTimeout: number | null;
  healthCheckInterval: number | null;
  healthCheckTimeout: number | null;
  readinessCheckType: string;
  readinessCheckEndpoint: string | null;
  readinessCheckInvocationTimeout: number | null;
  readinessCheckInterval: number | null;
}

export interface AppState {
  name: string;
  lifecycleType: string;
  buildpacks: string[];
  stack: string | null;
  docker?: { image: string; username?: string | null };
  env: Record<string, string>;
  features: Record<string, boolean>;
  /** Mapped routes (`host.domain/path`), with the destination protocol. */
  routes: Array<{ route: string; protocol: string }>;
  metadata: { labels: Record<string, string>; annotations: Record<string, string> };
  processes: ProcessState[];
}

function processManifest(p: ProcessState): Record<string, unknown> {
  const out: Record<string, unknown> = {
    type: p.type,
    instances: p.instances,
    memory: formatMegabytes(p.memoryInMb),
    'disk-quota': formatMegabytes(p.diskInMb),
    'log-rate-limit-per-second': formatLogRate(p.logRateLimit),
  };
  if (p.command !== null) out.command = p.command;
  out['health-check-type'] = p.healthCheckType;
  if (p.healthCheckEndpoint !== null) out['health-check-http-endpoint'] = p.healthCheckEndpoint;
  if (p.healthCheckInvocationTimeout !== null) out['health-check-invocation-timeout'] = p.healthCheckInvocationTimeout;
  if (p.healthCheckInterval !== null) out['health-check-interval'] = p.healthCheckInterval;
  if (p.healthCheckTimeout !== null) out.timeout = p.healthCheckTimeout;
  out['readiness-health-check-type'] = p.readinessCheckType;
  if (p.readinessCheckEndpoint !== null) out['readiness-health-check-http-endpoint'] = p.readinessCheckEndpoint;
  if (p.readinessCheckInvocationTimeout !== null) out['readiness-health-check-invocation-timeout'] = p.readinessCheckInvocationTimeout;
  if (p.readinessCheckInterval !== null) out['readiness-health-check-interval'] = p.readinessCheckInterval;
  return out;
}

/** One `applications[]` entry describing an app as it is (dashed keys, units as manifests write them). */
export function appManifest(app: AppState): Record<string, unknown> {
  const out: Record<string, unknown> = { name: app.name };
  if (app.lifecycleType === 'docker') {
    if (app.docker) out.docker = { image: app.docker.image, ...(app.docker.username ? { username: app.docker.username } : {}) };
  } else {
    if (app.lifecycleType === 'cnb') out.lifecycle = 'cnb';
    if (app.stack) out.stack = app.stack;
    if (app.buildpacks.length > 0) out.buildpacks = [...app.buildpacks];
  }
  out.features = { ...app.features };
  if (Object.keys(app.env).length > 0) out.env = { ...app.env };
  if (app.routes.length > 0) out.routes = app.routes.map((r) => ({ route: r.route, protocol: r.protocol }));
  else out['no-route'] = true;
  const { labels, annotations } = app.metadata;
  if (Object.keys(labels).length > 0 || Object.keys(annotations).length > 0) out.metadata = { labels: { ...labels }, annotations: { ...annotations } };
  out.processes = [...app.processes].sort((a, b) => (a.type === 'web' ? -1 : b.type === 'web' ? 1 : a.type.localeCompare(b.type))).map(processManifest);
  return out;
}
