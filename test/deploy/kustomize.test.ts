import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import pino from 'pino';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaseLeader } from '../../src/ha/leader-election.ts';
import { SYNC_RBAC_RULES } from '../../src/kube/kube-client.ts';
import { KubeSync } from '../../src/kube/kube-sync.ts';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';
import { startApiServer, type ApiServer, type KObj, type RecordedCall } from '../kube/apiserver/index.ts';
import { kubectlFor, kubectlPath } from '../kube/kubectl.ts';

/**
 * deploy/ (issue 11, item 3) rendered by the real `kubectl kustomize` and applied with the real `kubectl apply` to
 * the in-memory API server: every object is accepted, the overlays change what they say, and the RBAC granted to
 * Kiln's service account covers every call the leader election and the CRD sync controller made in these tests.
 * Nothing here ran against a real cluster (none can be installed on these machines).
 */

const repo = path.resolve(import.meta.dirname, '../..');
const TARGETS = ['deploy', 'deploy/overlays/sqlite-trial', 'deploy/overlays/ha-postgres'] as const;

function render(dir: string): KObj[] {
  const out = execFileSync(kubectlPath()!, ['kustomize', path.join(repo, dir)], { encoding: 'utf8', timeout: 60_000 });
  return YAML.parseAllDocuments(out).map((d) => d.toJSON() as KObj).filter(Boolean);
}

const find = (objs: KObj[], kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata?.name === name);

/** Does the RBAC in `objs` let ServiceAccount kiln/kiln make `call`? (Rules by group, resource[/subresource], verb.) */
function allowed(objs: KObj[], call: RecordedCall): boolean {
  const isKiln = (b: KObj) => (b.subjects ?? []).some((s: KObj) => s.kind === 'ServiceAccount' && s.name === 'kiln' && s.namespace === 'kiln');
  const rulesOf = (kind: string, name: string, ns?: string) => (objs.find((o) => o.kind === kind && o.metadata.name === name && (ns === undefined || o.metadata.namespace === ns))?.rules ?? []) as KObj[];
  const rules: KObj[] = [];
  for (const b of objs.filter((o) => o.kind === 'ClusterRoleBinding' && isKiln(o))) rules.push(...rulesOf('ClusterRole', b.roleRef.name));
  for (const b of objs.filter((o) => o.kind === 'RoleBinding' && isKiln(o) && o.metadata.namespace === call.namespace)) {
    rules.push(...(b.roleRef.kind === 'Role' ? rulesOf('Role', b.roleRef.name, call.namespace) : rulesOf('ClusterRole', b.roleRef.name)));
  }
  const resource = call.subresource ? `${call.resource}/${call.subresource}` : call.resource;
  return rules.some(
    (r) =>
      (r.apiGroups.includes(call.group) || r.apiGroups.includes('*')) &&
      (r.resources.includes(resource) || r.resources.includes('*')) &&
      (r.verbs.includes(call.verb) || r.verbs.includes('*')),
  );
}

describe.skipIf(!kubectlPath())('deploy/ with kustomize', () => {
  const rendered = new Map<string, KObj[]>();
  beforeAll(() => {
    for (const t of TARGETS) rendered.set(t, render(t));
  });

  it('installs with `kubectl apply -k deploy/`: every object accepted', async () => {
    const api = await startApiServer();
    try {
      const kubectl = kubectlFor(api.writeKubeconfig(fs.mkdtempSync(path.join(os.tmpdir(), 'deploy-'))));
      const r = await kubectl(['apply', '-k', path.join(repo, 'deploy')]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const objs = rendered.get('deploy')!;
      expect(r.stdout.trim().split('\n')).toHaveLength(objs.length);
      // Each object, read back from the server.
      const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'deploy-out-')), 'all.yaml');
      fs.writeFileSync(file, objs.map((o) => YAML.stringify(o)).join('---\n'));
      const got = await kubectl(['get', '-f', file, '-o', 'name']);
      expect(got.code, got.stderr).toBe(0);
      expect(got.stdout.trim().split('\n')).toHaveLength(objs.length);
      // Applying again changes nothing and fails nothing (how an upgrade is installed).
      const again = await kubectl(['apply', '-k', path.join(repo, 'deploy')]);
      expect(again.code, again.stderr).toBe(0);
    } finally {
      await api.close();
    }
  }, 120_000);

  it.each(['deploy/overlays/sqlite-trial', 'deploy/overlays/ha-postgres'])('applies the %s overlay: every object accepted', async (dir) => {
    const api = await startApiServer();
    try {
      const kubectl = kubectlFor(api.writeKubeconfig(fs.mkdtempSync(path.join(os.tmpdir(), 'deploy-'))));
      const r = await kubectl(['apply', '-k', path.join(repo, dir)]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim().split('\n')).toHaveLength(rendered.get(dir)!.length);
    } finally {
      await api.close();
    }
  }, 120_000);

  it('the base: two replicas with probes, scrape annotations, the Secret, CRDs, Service and Ingress for the API and the apps', () => {
    const objs = rendered.get('deploy')!;
    const d = find(objs, 'Deployment', 'kiln')!;
    expect(d.spec.replicas).toBe(2);
    const pod = d.spec.template;
    expect(pod.metadata.annotations).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': '9000', 'prometheus.io/path': '/metrics' });
    expect(pod.spec.serviceAccountName).toBe('kiln');
    const c = pod.spec.containers[0];
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');
    expect(c.livenessProbe.httpGet.path).toBe('/healthz');
    expect(c.envFrom).toEqual([{ secretRef: { name: 'kiln-database' } }]);
    const env = Object.fromEntries(c.env.map((e: KObj) => [e.name, e.value ?? e.valueFrom]));
    expect(env).toMatchObject({ KILN_LEADER_ELECTION: 'lease', KILN_KUBECONFIG: 'in-cluster', KILN_SHARED_DIR: '/var/lib/kiln-shared' });
    expect(env.KILN_REPLICA_ID).toEqual({ fieldRef: { fieldPath: 'metadata.name' } });
    expect(find(objs, 'PersistentVolumeClaim', 'kiln-shared')!.spec.accessModes).toEqual(['ReadWriteMany']);
    expect(find(objs, 'Secret', 'kiln-database')!.stringData.DATABASE_URL).toMatch(/^postgres:\/\//);
    expect(find(objs, 'ServiceAccount', 'kiln')).toBeDefined();
    expect(find(objs, 'Service', 'kiln')!.spec.ports[0]).toMatchObject({ port: 80, targetPort: 'http' });
    const hosts = find(objs, 'Ingress', 'kiln')!.spec.rules.map((r: KObj) => r.host);
    expect(hosts).toEqual(expect.arrayContaining(['api.kiln.example.com', '*.apps.kiln.example.com']));
    // Every CRD in crds/ is installed (crds/kustomization.yml must list new ones).
    const crdFiles = fs.readdirSync(path.join(repo, 'crds')).filter((f) => f.endsWith('.yaml'));
    const crds = objs.filter((o) => o.kind === 'CustomResourceDefinition').map((o) => `${o.spec.group}_${o.spec.names.plural}.yaml`);
    expect(crds.sort()).toEqual(crdFiles.sort());
  });

  it('sqlite-trial runs one replica that is recreated, on SQLite in a volume; ha-postgres three spread over nodes', () => {
    const trial = rendered.get('deploy/overlays/sqlite-trial')!;
    const d = find(trial, 'Deployment', 'kiln')!;
    expect(d.spec.replicas).toBe(1);
    expect(d.spec.strategy).toEqual({ type: 'Recreate' });
    expect(find(trial, 'Secret', 'kiln-database')!.stringData.DATABASE_URL).toBe('');
    expect(d.spec.template.spec.volumes).toEqual([{ name: 'data', persistentVolumeClaim: { claimName: 'kiln-data' } }]);
    expect(d.spec.template.spec.containers[0].env.map((e: KObj) => e.name)).not.toContain('KILN_SHARED_DIR');
    expect(find(trial, 'PersistentVolumeClaim', 'kiln-shared')).toBeUndefined();
    expect(find(trial, 'PodDisruptionBudget', 'kiln')).toBeUndefined();

    const ha = rendered.get('deploy/overlays/ha-postgres')!;
    const hd = find(ha, 'Deployment', 'kiln')!;
    expect(hd.spec.replicas).toBe(3);
    expect(hd.spec.template.spec.affinity.podAntiAffinity).toBeDefined();
    expect(find(ha, 'PodDisruptionBudget', 'kiln')!.spec.minAvailable).toBe(2);
  });

  describe('RBAC covers what Kiln calls', () => {
    let api: ApiServer;
    let t: TestKiln;
    beforeAll(async () => {
      api = await startApiServer();
      const kubectl = kubectlFor(api.writeKubeconfig(fs.mkdtempSync(path.join(os.tmpdir(), 'deploy-rbac-'))));
      expect((await kubectl(['apply', '-k', path.join(repo, 'deploy')])).code).toBe(0);
      t = await createTestKiln();
    }, 120_000);
    afterAll(async () => {
      await t?.close();
      await api?.close();
    });

    it('the leader election Lease and the CRD sync controller, call by call', async () => {
      const kubeconfig = api.writeKubeconfig(fs.mkdtempSync(path.join(os.tmpdir(), 'deploy-rbac-kc-')));
      const log = pino({ level: 'silent' });
      api.calls.length = 0;

      // The Lease, as the Deployment configures it (namespace kiln): acquire, renew, release.
      const kc = new k8s.KubeConfig();
      kc.loadFromFile(kubeconfig);
      let elected = false;
      const lease = new LeaseLeader({
        kubeconfig: kc,
        namespace: 'kiln',
        name: 'kiln-controllers',
        replicaId: 'kiln-0',
        timing: { leaseMs: 3000, renewDeadlineMs: 2000, retryMs: 100 },
        log,
        onElected: async () => void (elected = true),
        onLost: async () => undefined,
      });
      await lease.start();
      expect(elected).toBe(true);
      await new Promise((r) => setTimeout(r, 350));
      await lease.stop();

      // The CRD sync: watches, finalizers, status — an Organization made and deleted.
      const sync = new KubeSync({ store: t.kiln.store, log, kubeconfig, resyncMs: 200, runtime: t.kiln.runtime });
      void sync.start();
      const storage = api.storage;
      const orgs = storage.type('kiln.dev', 'organizations')!;
      storage.create(orgs, undefined, { apiVersion: 'kiln.dev/v1alpha1', kind: 'Organization', metadata: { name: 'rbac-org' }, spec: {} });
      const deadline = Date.now() + 20_000;
      while (!storage.find(orgs, undefined, 'rbac-org')?.status?.conditions && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(storage.find(orgs, undefined, 'rbac-org')?.status?.conditions).toBeDefined();
      storage.delete(orgs, undefined, 'rbac-org');
      while (storage.find(orgs, undefined, 'rbac-org') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      await sync.stop();

      const calls = [...new Map(api.calls.map((c) => [`${c.verb} ${c.group}/${c.resource}${c.subresource ? `/${c.subresource}` : ''} ${c.namespace ?? '*'}`, c])).entries()];
      const seen = calls.map(([k]) => k).sort();
      console.log(`Kubernetes calls checked against deploy/'s RBAC: ${seen.join('; ')}`);
      expect(seen).toEqual(expect.arrayContaining(['create coordination.k8s.io/leases kiln', 'update coordination.k8s.io/leases kiln', 'watch kiln.dev/organizations *']));
      expect(seen.some((k) => k.startsWith('patch kiln.dev/organizations'))).toBe(true);
      // The ClusterRole is exactly what the sync controller declares it needs.
      const clusterRole = rendered.get('deploy')!.find((o) => o.kind === 'ClusterRole' && o.metadata.name === 'kiln-front-door')!;
      expect(clusterRole.rules).toEqual(SYNC_RBAC_RULES.map((r) => ({ apiGroups: [...r.apiGroups], resources: [...r.resources], verbs: [...r.verbs] })));
      const denied = calls.filter(([, c]) => !allowed(rendered.get('deploy')!, c)).map(([k]) => k);
      expect(denied, `calls the RBAC in deploy/ does not allow: ${denied.join(', ')}`).toEqual([]);
    }, 60_000);
  });
});
