import type { Api, AppDeps } from '../context.ts';
import { ctxOf } from './mapping.ts';
import { route, TsuruError } from './wire.ts';

/**
 * Service instances and bindings (research/tsuru.md §6.3): service ⇄ offering, instance ⇄ managed instance,
 * bind ⇄ credential binding. Kiln's CF services are being built beside this facade, so each route answers 501
 * naming the CF V3 call it will become; the comment on each is the translation to write once they land.
 */
interface ServiceRoute {
  method: 'get' | 'post' | 'put' | 'delete';
  path: string;
  /** The CF V3 equivalent the 501 names. */
  cf: string;
}

export const SERVICE_ROUTES: ServiceRoute[] = [
  // → listServiceInstances(ctx, {space_guids: the caller's teams}); present {service, instances[], plans[]} per offering; 204 when empty.
  { method: 'get', path: '/services/instances', cf: 'GET /v3/service_instances (cf services)' },
  // → createServiceInstance(ctx, {type: 'managed', name, space: team of `owner`, plan: offering `service` + plan `plan`, parameters.*}); 201.
  { method: 'post', path: '/services/:service/instances', cf: 'POST /v3/service_instances with type managed (cf create-service)' },
  // → createCredentialBinding(ctx, {type: 'app', instance, app}) then startRollingRestart unless noRestart; JSON stream.
  { method: 'put', path: '/services/:service/instances/:instance/apps/:app', cf: 'POST /v3/service_credential_bindings with type app, then a rolling restart (cf bind-service)' },
  { method: 'put', path: '/services/:service/instances/:instance/:app', cf: 'POST /v3/service_credential_bindings with type app, then a rolling restart (cf bind-service)' },
  // → deleteCredentialBinding(ctx, binding of instance × app) then startRollingRestart unless noRestart; JSON stream.
  { method: 'delete', path: '/services/:service/instances/:instance/apps/:app', cf: 'DELETE /v3/service_credential_bindings/:guid (cf unbind-service)' },
  { method: 'delete', path: '/services/:service/instances/:instance/:app', cf: 'DELETE /v3/service_credential_bindings/:guid (cf unbind-service)' },
];

export function registerTsuruServices(app: Api, deps: AppDeps): void {
  for (const r of SERVICE_ROUTES) {
    route(app, r.method, r.path, (c) => {
      ctxOf(c, deps);
      throw new TsuruError(501, `Kiln's Tsuru API does not translate service instances yet; use ${r.cf}.`);
    });
  }
}
