import type { Api, AppDeps } from '../context.ts';
import { KilnError } from '../../domain/errors.ts';
import { readsEverything } from '../../domain/principal.ts';
import { countRows } from '../../services/info.ts';

/** The Cloud Controller API version Kiln advertises; the cf CLI switches features on it (cf-cli-flows §2). */
export const CC_API_VERSION = '3.195.0';
export const KILN_VERSION = '0.1.0';

const V3_COLLECTIONS = [
  'app_usage_events', 'apps', 'audit_events', 'buildpacks', 'builds', 'deployments', 'domains', 'droplets',
  'environment_variable_groups', 'feature_flags', 'info', 'isolation_segments', 'organizations',
  'organization_quotas', 'packages', 'processes', 'resource_matches', 'roles', 'routes', 'security_groups',
  'service_brokers', 'service_instances', 'service_credential_bindings', 'service_offerings', 'service_plans',
  'service_route_bindings', 'service_usage_events', 'spaces', 'space_quotas', 'stacks', 'tasks', 'users',
] as const;

export function registerRoot(app: Api, deps: AppDeps): void {
  app.get('/', (c) => {
    const l = c.var.linker;
    // Kiln serves the identity provider and the log-cache API on its own origin.
    return c.json({
      links: {
        self: l.link(''),
        cloud_controller_v3: { href: l.href('/v3'), meta: { version: CC_API_VERSION } },
        // Where root_controller.rb points them; Kiln runs no policy server, and those paths say so (below).
        network_policy_v0: l.link('/networking/v0/external'),
        network_policy_v1: l.link('/networking/v1/external'),
        login: l.link(''),
        uaa: l.link(''),
        credhub: null,
        routing: null,
        // Kiln serves neither doppler's firehose nor the log-stream (RLP gateway) API: both paths say so (below);
        // the cf CLI v8 reads logs from log_cache.
        logging: { href: l.href('/doppler').replace(/^http/, 'ws') },
        log_cache: l.link(''),
        log_stream: l.link('/log_stream'),
        // CC's default app_ssh_endpoint. Kiln runs no SSH proxy, so there is no host key to fingerprint.
        app_ssh: { href: `ssh.${deps.config.systemDomain}:2222`, meta: { host_key_fingerprint: '', oauth_client: 'ssh-proxy' } },
      },
    });
  });

  // The policy server's error shape (`{"error": …}`), so the cf CLI prints the reason for network-policy commands.
  app.all('/networking/*', (c) =>
    c.json({ error: 'Kiln has no container networking policy server: network policies are not supported on this platform.' }, 501),
  );

  for (const [prefix, what] of [['/doppler', 'doppler (the loggregator firehose)'], ['/log_stream', 'the log-stream API']] as const) {
    app.all(`${prefix}/*`, (c) => c.json({ error: `Kiln does not run ${what}: read app logs from log-cache (${c.var.linker.href('/api/v1/read')}).` }, 501));
    app.all(prefix, (c) => c.json({ error: `Kiln does not run ${what}: read app logs from log-cache (${c.var.linker.href('/api/v1/read')}).` }, 501));
  }

  app.get('/v3', (c) => {
    const l = c.var.linker;
    const links: Record<string, { href: string }> = { self: l.link('/v3') };
    for (const name of V3_COLLECTIONS) links[name] = l.link(`/v3/${name}`);
    return c.json({ links });
  });

  app.get('/v3/info', (c) =>
    c.json({
      build: KILN_VERSION,
      cli_version: { minimum: '', recommended: '' },
      custom: {},
      description: 'Kiln: a Cloud Foundry V3-compatible application platform',
      name: 'kiln',
      version: 0,
      osbapi_version: '2.15',
      rate_limits: { enabled: false, general_limit: 0, reset_interval_in_minutes: 0 },
      links: { self: c.var.linker.link('/v3/info'), support: { href: '' } },
    }),
  );

  app.get('/v3/info/usage_summary', async (c) => {
    if (!readsEverything(c.var.principal)) throw new KilnError('NotFound');
    return c.json({
      usage_summary: {
        started_instances: 0,
        memory_in_mb: 0,
        routes: 0,
        service_instances: 0,
        reserved_ports: 0,
        domains: await countRows(deps, 'domains'),
        per_app_tasks: 0,
        service_keys: 0,
      },
      links: { self: c.var.linker.link('/v3/info/usage_summary') },
    });
  });
}
