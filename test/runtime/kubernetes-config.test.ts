import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/config.ts';

/** KILN_RUNTIME and the Kubernetes runtime's settings. */
describe('runtime configuration', () => {
  it('defaults to the local runtime', () => {
    expect(loadConfig({}).runtime).toEqual({ kind: 'local' });
  });

  it('reads the Kubernetes runtime settings with their defaults', () => {
    expect(loadConfig({ KILN_RUNTIME: 'kubernetes' }).runtime).toEqual({
      kind: 'kubernetes',
      kubeconfig: 'in-cluster',
      namespace: 'kiln-apps',
      kilnUrl: undefined,
      stackImage: 'cloudfoundry/cflinuxfs4',
      stagerCommand: ['kiln', 'stage-job'],
    });
    const custom = loadConfig({
      KILN_RUNTIME: 'kubernetes',
      KILN_KUBE_RUNTIME_NAMESPACE: 'apps',
      KILN_KUBE_RUNTIME_KILN_URL: 'http://kiln.kiln-system.svc:9000/',
      KILN_STACK_IMAGE: 'registry.example/kiln-stack:1',
      KILN_KUBE_RUNTIME_STAGER_COMMAND: '["/usr/bin/node", "/opt/kiln/dist/main.js", "stage-job"]',
    }).runtime;
    expect(custom).toMatchObject({ namespace: 'apps', kilnUrl: 'http://kiln.kiln-system.svc:9000', stagerCommand: ['/usr/bin/node', '/opt/kiln/dist/main.js', 'stage-job'] });
  });

  it('refuses a bad runtime, namespace or stager command', () => {
    expect(() => loadConfig({ KILN_RUNTIME: 'nomad' })).toThrow(ConfigError);
    expect(() => loadConfig({ KILN_RUNTIME: 'kubernetes', KILN_KUBE_RUNTIME_NAMESPACE: 'Not_A_Namespace' })).toThrow(ConfigError);
    expect(() => loadConfig({ KILN_RUNTIME: 'kubernetes', KILN_KUBE_RUNTIME_STAGER_COMMAND: '[1, 2]' })).toThrow(ConfigError);
    expect(() => loadConfig({ KILN_RUNTIME: 'kubernetes', KILN_KUBE_RUNTIME_STAGER_COMMAND: '["kiln",' })).toThrow(ConfigError);
  });
});
