import { describe, expect, it } from 'vitest';
import { KilnError } from '../../src/domain/errors.ts';
import { ManifestSchema, parseManifestApp, parseManifestApps, parseManifestRoute } from '../../src/domain/manifest.ts';
import { diffManifest } from '../../src/domain/manifest-diff.ts';
import { parseManifestText } from '../../src/domain/manifest-document.ts';
import { appManifest, type AppState } from '../../src/domain/manifest-generate.ts';
import { formatLogRate, logRateInBytes, sizeInMb } from '../../src/domain/manifest-units.ts';

function kilnError(fn: () => unknown): KilnError {
  try {
    fn();
  } catch (err) {
    if (err instanceof KilnError) return err;
    throw err;
  }
  throw new Error('expected a KilnError');
}

const details = (e: KilnError) => [e, ...e.more].map((x) => x.detail);

describe('parseManifestText', () => {
  it('parses a YAML mapping (YAML 1.1 booleans, as Psych)', () => {
    expect(parseManifestText('applications:\n- name: a\n  no-route: yes\n')).toEqual({ applications: [{ name: 'a', 'no-route': true }] });
  });

  it('refuses aliases, non-mappings, broken YAML, other versions and oversized bodies', () => {
    const alias = kilnError(() => parseManifestText('x: &a {b: 1}\napplications:\n- *a\n'));
    expect([alias.errorName, alias.status, alias.detail]).toEqual(['BadRequest', 400, 'Bad request: Manifest does not support Anchors and Aliases']);
    expect(kilnError(() => parseManifestText('- a\n- b\n')).errorName).toBe('MessageParseError');
    expect(kilnError(() => parseManifestText('"unterminated')).errorName).toBe('MessageParseError');
    expect(kilnError(() => parseManifestText('')).errorName).toBe('MessageParseError');
    const version = kilnError(() => parseManifestText('version: 2\napplications: [{name: a}]\n'));
    expect([version.status, version.detail]).toEqual([422, 'Unsupported manifest schema version. Currently supported versions: [1].']);
    expect(parseManifestText('version: 1\napplications: [{name: a}]\n').version).toBe(1);
    const big = kilnError(() => parseManifestText(`applications: [{name: a}]\n#${'x'.repeat(1024 * 1024)}`));
    expect(big.detail).toBe('Bad request: Manifest size is too large. The maximum supported size is 1MB.');
  });
});

describe('units', () => {
  it('converts sizes to whole megabytes', () => {
    expect(sizeInMb('256M', 'Memory')).toEqual({ mb: 256 });
    expect(sizeInMb('1G', 'Memory')).toEqual({ mb: 1024 });
    expect(sizeInMb('1gb', 'Memory')).toEqual({ mb: 1024 });
    expect(sizeInMb('1.5G', 'Memory')).toEqual({ mb: 1536 });
    expect(sizeInMb('2048K', 'Memory')).toEqual({ mb: 2 });
    expect(sizeInMb('1T', 'Disk quota')).toEqual({ mb: 1024 * 1024 });
  });

  it('reports sizes without a unit, non-numbers and zero with upstream wording', () => {
    expect(sizeInMb(256, 'Memory').error).toBe('Memory must use a supported unit: B, K, KB, M, MB, G, GB, T, or TB');
    expect(sizeInMb('256X', 'Memory').error).toBe('Memory must use a supported unit: B, K, KB, M, MB, G, GB, T, or TB');
    expect(sizeInMb('lots', 'Disk quota').error).toBe('Disk quota is not a number');
    expect(sizeInMb('0M', 'Memory').error).toBe('Memory must be greater than 0MB');
    expect(sizeInMb('512K', 'Memory').error).toBe('Memory must be greater than 0MB');
    expect(sizeInMb('-1M', 'Memory').error).toBe('Memory must be greater than 0MB');
  });

  it('handles log rates: -1 unlimited, 0, sizes in bytes, canonical rendering', () => {
    expect(logRateInBytes(-1)).toEqual({ bytes: -1 });
    expect(logRateInBytes('0')).toEqual({ bytes: 0 });
    expect(logRateInBytes('1K')).toEqual({ bytes: 1024 });
    expect(logRateInBytes('-5K').error).toBe('Log rate limit in bytes per second must be an integer greater than or equal to -1B');
    expect(logRateInBytes('5').error).toBe('Log rate limit per second must use a supported unit: B, K, KB, M, MB, G, GB, T, or TB');
    expect([formatLogRate(-1), formatLogRate(1024), formatLogRate(3 * 1024 ** 2), formatLogRate(1500)]).toEqual([-1, '1K', '3M', '1500B']);
  });
});

describe('parseManifestRoute', () => {
  it('splits a route into domain candidates, path and port', () => {
    expect(parseManifestRoute('myapp.apps.example.com/api')).toEqual({
      candidates: [
        { host: '', domain: 'myapp.apps.example.com' },
        { host: 'myapp', domain: 'apps.example.com' },
        { host: 'myapp.apps', domain: 'example.com' },
        { host: 'myapp.apps.example', domain: 'com' },
      ],
      path: '/api',
      port: undefined,
    });
    expect(parseManifestRoute('https://A.Example.com')?.candidates[1]).toEqual({ host: 'a', domain: 'example.com' });
    expect(parseManifestRoute('tcp.example.com:1234')?.port).toBe(1234);
  });

  it('rejects what is not a properly formed URL', () => {
    for (const bad of ['', 'user:pw@a.example.com', 'http://a.example.com:80', 'tcp://a.example.com', 'a.example.com:99999', 'a..b', 'a b.com', 'ftp://a.com']) {
      expect(parseManifestRoute(bad), bad).toBeUndefined();
    }
  });
});

describe('parseManifestApp', () => {
  it('normalises a full application (dashes or underscores, web shorthand folded into web)', () => {
    const { errors, app } = parseManifestApp({
      name: 'app',
      buildpacks: ['nodejs_buildpack'],
      stack: 'cflinuxfs4',
      env: { A: 'x', PORT_NUMBER: 8080, ON: true },
      instances: 2,
      memory: '256M',
      disk_quota: '1G',
      'log-rate-limit-per-second': '1K',
      command: 'node server.js',
      'health-check-type': 'http',
      'health-check-http-endpoint': '/health',
      health_check_invocation_timeout: 5,
      timeout: 60,
      'readiness-health-check-type': 'port',
      routes: [{ route: 'app.example.com', protocol: 'http2' }, { route: 'app2.example.com/x', options: { loadbalancing: 'least-connection' } }],
      processes: [
        { type: 'worker', instances: 1, command: 'node worker.js', 'health-check-type': 'none' },
        { type: 'web', instances: 3 },
      ],
      metadata: { labels: { team: 'a' }, annotations: { note: 'b' } },
      features: { ssh: false },
      path: '/local/dir',
    });
    expect(errors).toEqual([]);
    expect(app).toMatchObject({
      name: 'app',
      buildpacks: ['nodejs_buildpack'],
      stack: 'cflinuxfs4',
      env: { A: 'x', PORT_NUMBER: '8080', ON: 'true' },
      features: { ssh: false },
      metadata: { labels: { team: 'a' }, annotations: { note: 'b' } },
    });
    expect(app!.routes!.map((r) => [r.route, r.protocol, r.loadbalancing, r.path])).toEqual([
      ['app.example.com', 'http2', undefined, ''],
      ['app2.example.com/x', undefined, 'least-connection', '/x'],
    ]);
    const [worker, web] = app!.processes;
    expect(worker).toMatchObject({ type: 'worker', instances: 1, command: 'node worker.js', healthCheck: { type: 'process' } });
    // The explicit web entry wins (instances 3); the shorthand fills the rest.
    expect(web).toMatchObject({
      type: 'web',
      instances: 3,
      memoryInMb: 256,
      diskInMb: 1024,
      logRateLimit: 1024,
      command: 'node server.js',
      healthCheck: { type: 'http', endpoint: '/health', invocationTimeout: 5, timeout: 60 },
      readinessCheck: { type: 'port' },
    });
  });

  it('treats the singular buildpack as deprecated, with default/null meaning auto-detect', () => {
    expect(parseManifestApp({ name: 'a', buildpack: 'go_buildpack' }).app).toMatchObject({ buildpacks: ['go_buildpack'], singularBuildpack: true });
    expect(parseManifestApp({ name: 'a', buildpack: 'default' }).app?.buildpacks).toEqual([]);
    expect(parseManifestApp({ name: 'a', buildpacks: null }).app?.buildpacks).toEqual([]);
    expect(parseManifestApp({ name: 'a', docker: { image: 'nginx', username: 'me' } }).app).toMatchObject({ lifecycle: 'docker', docker: { image: 'nginx', username: 'me' } });
  });

  it('collects every problem with upstream wording', () => {
    const { errors } = parseManifestApp({
      name: 'bad',
      instances: -1,
      memory: '100',
      disk_quota: 'big',
      timeout: 0,
      'health-check-type': 'tcp',
      'health-check-http-endpoint': 'health',
      command: '',
      buildpack: 'a',
      buildpacks: ['b'],
      processes: [{ type: 'worker', memory: '0M' }, { instances: 1 }, { type: 'worker' }],
      routes: [{ route: 'user:pw@x.com' }, { route: 'ok.example.com', protocol: 'udp' }],
      'no-route': 'maybe',
      env: { VCAP_X: 'a', NESTED: { a: 1 } },
      features: { ssh: 'yes' },
      services: ['db'],
      metadata: { labels: { 'bad key!': 'v' } },
    });
    expect(errors).toEqual([
      'Command must be between 1 and 4096 characters',
      'Instances must be greater than or equal to 0',
      'Memory must use a supported unit: B, K, KB, M, MB, G, GB, T, or TB',
      'Disk quota is not a number',
      'Health check type must be "port", "process", or "http"',
      'Health check endpoint must be a valid URI path',
      'Timeout must be greater than or equal to 1',
      'All Processes must specify a type',
      'Process "worker": Memory must be greater than 0MB',
      'Process "worker" may only be present once',
      'Buildpack and Buildpacks fields cannot be used together.',
      "Non-string value in environment variable for key 'NESTED', value '{\"a\":1}'",
      'Env cannot start with VCAP_',
      'Features must be a map of valid feature names to booleans (true = enabled, false = disabled)',
      'No-route must be a boolean',
      "The route 'user:pw@x.com' is not a properly formed URL",
      "Route protocol must be 'http1', 'http2' or 'tcp'.",
      "Service instance 'db' not found",
      "Metadata label key error: 'bad key!' contains invalid characters",
    ]);
  });

  it('rejects docker with buildpacks, a missing name and unknown features', () => {
    expect(parseManifestApp({ name: 'd', docker: { image: 'x' }, buildpacks: ['b'] }).errors).toEqual(['Cannot specify both buildpack(s) and docker keys']);
    expect(parseManifestApp({ instances: 1 }).errors).toEqual(['Name must not be empty']);
    expect(parseManifestApp({ name: 'f', features: { teleport: true } }).errors).toEqual(['Features has unsupported feature(s): teleport']);
    expect(parseManifestApp({ name: 'f', features: { 'service-binding-k8s': true } }).errors).toEqual([]);
    expect(parseManifestApp({ name: 'r', 'random-route': true, 'default-route': true }).errors).toEqual(['Random-route and default-route may not be used together']);
    expect(parseManifestApp({ name: 'r', routes: 'a.com' }).errors).toEqual(['Routes must be a list of route objects']);
  });
});

describe('parseManifestApps', () => {
  it('prefixes every problem with the application and reports them all at once', () => {
    const err = kilnError(() => parseManifestApps({ applications: [{ name: 'one', instances: 'x' }, { memory: '1Q' }, { name: 'ok' }] }));
    expect(err.status).toBe(422);
    expect(details(err)).toEqual([
      "For application 'one': Instances is not a number",
      'For application at index 1: Name must not be empty',
      'For application at index 1: Memory must use a supported unit: B, K, KB, M, MB, G, GB, T, or TB',
    ]);
  });

  it('requires applications', () => {
    expect(kilnError(() => parseManifestApps({})).detail).toBe("Cannot parse manifest with no 'applications' field.");
    expect(kilnError(() => parseManifestApps({ applications: [] })).detail).toBe("Cannot parse manifest with no 'applications' field.");
  });

  it('is exposed as a zod schema', () => {
    expect(ManifestSchema.parse({ applications: [{ name: 'z' }] })).toEqual([{ name: 'z', singularBuildpack: false, processes: [] }]);
    const bad = ManifestSchema.safeParse({ applications: [{ name: 'z', instances: -2 }] });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues.map((i) => i.message)).toEqual(["For application 'z': Instances must be greater than or equal to 0"]);
  });
});

const state: AppState = {
  name: 'app',
  lifecycleType: 'buildpack',
  buildpacks: [],
  stack: 'cflinuxfs4',
  env: { A: '1' },
  features: { ssh: true, revisions: false },
  routes: [{ route: 'app.apps.localhost', protocol: 'http1' }],
  metadata: { labels: {}, annotations: {} },
  processes: [
    {
      type: 'web',
      command: null,
      instances: 1,
      memoryInMb: 1024,
      diskInMb: 1024,
      logRateLimit: -1,
      healthCheckType: 'port',
      healthCheckEndpoint: null,
      healthCheckInvocationTimeout: null,
      healthCheckInterval: null,
      healthCheckTimeout: null,
      readinessCheckType: 'process',
      readinessCheckEndpoint: null,
      readinessCheckInvocationTimeout: null,
      readinessCheckInterval: null,
    },
  ],
};

describe('appManifest and diffManifest', () => {
  it('renders an app with units and only the settings that are set', () => {
    expect(appManifest(state)).toEqual({
      name: 'app',
      stack: 'cflinuxfs4',
      features: { ssh: true, revisions: false },
      env: { A: '1' },
      routes: [{ route: 'app.apps.localhost', protocol: 'http1' }],
      processes: [
        {
          type: 'web',
          instances: 1,
          memory: '1024M',
          'disk-quota': '1024M',
          'log-rate-limit-per-second': -1,
          'health-check-type': 'port',
          'readiness-health-check-type': 'process',
        },
      ],
    });
    expect(appManifest({ ...state, routes: [] })['no-route']).toBe(true);
  });

  it('reports replace, add and unchanged values with normalised units', () => {
    const current = appManifest(state);
    const diff = diffManifest(
      [{ name: 'app', instances: 3, memory: '1G', disk_quota: '2G', env: { A: '1', B: '2' }, routes: [{ route: 'app.apps.localhost' }, { route: 'new.apps.localhost' }], 'default-route': true, path: '/x' }],
      [current],
    );
    expect(diff).toEqual([
      { op: 'replace', path: '/applications/0/instances', was: 1, value: 3 },
      // App-level disk_quota (and memory) are left out of the diff, as space_diff_manifest.rb does.
      { op: 'add', path: '/applications/0/env/B', value: '2' },
      { op: 'add', path: '/applications/0/routes/1', value: { route: 'new.apps.localhost' } },
    ]);
  });

  it('diffs processes by type and treats a new app as all additions', () => {
    const current = appManifest(state);
    expect(diffManifest([{ name: 'app', processes: [{ type: 'web', 'health-check-type': 'none' }, { type: 'worker', instances: 1 }] }], [current])).toEqual([
      { op: 'replace', path: '/applications/0/processes/0/health-check-type', was: 'port', value: 'process' },
      { op: 'add', path: '/applications/0/processes/1', value: { type: 'worker', instances: 1 } },
    ]);
    expect(diffManifest([{ name: 'new', instances: 2 }], [undefined])).toEqual([
      { op: 'add', path: '/applications/0/name', value: 'new' },
      { op: 'add', path: '/applications/0/instances', value: 2 },
    ]);
  });

  it('round-trips: an app manifest parses back to the same settings', () => {
    const { errors, app } = parseManifestApp(appManifest({ ...state, processes: [{ ...state.processes[0]!, command: 'run', healthCheckTimeout: 30, logRateLimit: 2048 }] }));
    expect(errors).toEqual([]);
    expect(app!.processes[0]).toMatchObject({ type: 'web', instances: 1, memoryInMb: 1024, diskInMb: 1024, logRateLimit: 2048, command: 'run', healthCheck: { type: 'port', timeout: 30 } });
    expect(diffManifest([appManifest(state)], [appManifest(state)])).toEqual([]);
  });
});
