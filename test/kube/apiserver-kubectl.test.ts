import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiServer, type ApiServer } from './apiserver/index.ts';
import { kubectlFor, mustSucceed, kubectlPath } from './kubectl.ts';

/**
 * The in-memory API server driven by the real kubectl binary: discovery, client-side apply with strategic merge
 * patch (built-ins) and JSON merge patch (custom resources), CRDs, printer columns, wait, finalizers, namespace
 * deletion and garbage collection.
 */
let server: ApiServer;
let kubectl: ReturnType<typeof kubectlFor>;

const WIDGETS_CRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: { name: widgets.example.com }
spec:
  group: example.com
  scope: Namespaced
  names: { kind: Widget, plural: widgets, singular: widget, shortNames: [wd] }
  versions:
    - name: v1
      served: true
      storage: true
      subresources: { status: {} }
      additionalPrinterColumns:
        - { name: Size, type: integer, jsonPath: .spec.size }
        - { name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status' }
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [size]
              properties:
                size: { type: integer, minimum: 1 }
                color: { type: string, default: blue }
                tags: { type: array, items: { type: string } }
            status:
              type: object
              x-kubernetes-preserve-unknown-fields: true
`;

const deployment = (replicas: number, env: string) => `
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, labels: { app: web } }
spec:
  replicas: ${replicas}
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      containers:
        - name: main
          image: example/web
          env: [${env}]
        - name: sidecar
          image: example/sidecar
`;

const ok = (args: string[], stdin?: string): Promise<string> => mustSucceed(kubectl, args, stdin);

beforeAll(async () => {
  server = await startApiServer();
  kubectl = kubectlFor(server.writeKubeconfig(fs.mkdtempSync(path.join(os.tmpdir(), 'kube-'))));
});
afterAll(() => server?.close());

describe.skipIf(!kubectlPath())('the in-memory API server under kubectl', () => {
  it('answers discovery so that kubectl lists built-in kinds and the server version', async () => {
    expect(await ok(['get', 'namespaces', '-o', 'name'])).toContain('namespace/default');
    const resources = await ok(['api-resources', '-o', 'name']);
    for (const r of ['pods', 'configmaps', 'secrets', 'services', 'events', 'deployments.apps', 'jobs.batch', 'customresourcedefinitions.apiextensions.k8s.io'])
      expect(resources.split('\n')).toContain(r);
    expect(JSON.parse(await ok(['version', '-o', 'json'])).serverVersion.gitVersion).toMatch(/^v1\./);
  });

  it('creates namespaces, config maps and secrets with kubectl create (protobuf bodies)', async () => {
    await ok(['create', 'namespace', 'team']);
    await ok(['create', 'configmap', 'settings', '-n', 'team', '--from-literal=mode=fast']);
    await ok(['create', 'secret', 'generic', 'creds', '-n', 'team', '--from-literal=password=s3cret']);
    expect(JSON.parse(await ok(['get', 'configmap', 'settings', '-n', 'team', '-o', 'json'])).data).toEqual({ mode: 'fast' });
    const secret = JSON.parse(await ok(['get', 'secret', 'creds', '-n', 'team', '-o', 'json']));
    expect(Buffer.from(secret.data.password, 'base64').toString()).toBe('s3cret');
  });

  it('applies a Deployment twice: the second apply is a strategic merge patch that merges lists by key', async () => {
    expect(await ok(['apply', '-f', '-'], deployment(2, '{ name: A, value: "1" }, { name: B, value: "2" }'))).toContain('deployment.apps/web created');
    const first = JSON.parse(await ok(['get', 'deployment', 'web', '-o', 'json']));
    expect(first.metadata.generation).toBe(1);
    expect(first.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']).toBeTruthy();

    expect(await ok(['apply', '-f', '-'], deployment(3, '{ name: A, value: "1" }, { name: C, value: "3" }'))).toContain('configured');
    const second = JSON.parse(await ok(['get', 'deployment', 'web', '-o', 'json']));
    expect(second.metadata.generation).toBe(2);
    expect(second.spec.replicas).toBe(3);
    expect(second.spec.template.spec.containers.map((c: { name: string }) => c.name)).toEqual(['main', 'sidecar']);
    expect(second.spec.template.spec.containers[0].env).toEqual([
      { name: 'A', value: '1' },
      { name: 'C', value: '3' },
    ]);

    expect(await ok(['apply', '-f', '-'], deployment(3, '{ name: A, value: "1" }, { name: C, value: "3" }'))).toContain('unchanged');
    expect(JSON.parse(await ok(['get', 'deployment', 'web', '-o', 'json'])).metadata.resourceVersion).toBe(second.metadata.resourceVersion);
  });

  it('selects by label and by field', async () => {
    await ok(['label', 'deployment', 'web', 'tier=frontend']);
    expect(await ok(['get', 'deployments', '-l', 'tier=frontend', '-o', 'name'])).toBe('deployment.apps/web\n');
    expect(await ok(['get', 'deployments', '-l', 'tier in (backend)', '-o', 'name'])).toBe('');
    expect(await ok(['get', 'namespaces', '--field-selector', 'metadata.name=team', '-o', 'name'])).toBe('namespace/team\n');
    const bad = await kubectl(['get', 'configmaps', '--field-selector', 'data.mode=fast']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('field label not supported');
  });

  it('registers a CRD, serves the new kind, validates and defaults it, and prints its columns', async () => {
    await ok(['apply', '-f', '-'], WIDGETS_CRD);
    await ok(['wait', '--for=condition=Established', 'crd/widgets.example.com', '--timeout=10s']);
    await ok(['apply', '-f', '-'], 'apiVersion: example.com/v1\nkind: Widget\nmetadata: { name: w1 }\nspec: { size: 2 }\n');
    const w1 = JSON.parse(await ok(['get', 'wd', 'w1', '-o', 'json']));
    expect(w1.spec).toEqual({ size: 2, color: 'blue' });

    const unknown = await kubectl(['apply', '-f', '-'], 'apiVersion: example.com/v1\nkind: Widget\nmetadata: { name: w2 }\nspec: { size: 2, shape: round }\n');
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('unknown field "spec.shape"');
    const invalid = await kubectl(['apply', '-f', '-'], 'apiVersion: example.com/v1\nkind: Widget\nmetadata: { name: w2 }\nspec: { size: 0 }\n');
    expect(invalid.code).not.toBe(0);
    expect(invalid.stderr).toMatch(/is invalid: spec.size/);

    // A custom resource is patched with a JSON merge patch: a removed list is removed.
    await ok(['apply', '-f', '-'], 'apiVersion: example.com/v1\nkind: Widget\nmetadata: { name: w1 }\nspec: { size: 3, tags: [a, b] }\n');
    await ok(['apply', '-f', '-'], 'apiVersion: example.com/v1\nkind: Widget\nmetadata: { name: w1 }\nspec: { size: 3 }\n');
    const applied = JSON.parse(await ok(['get', 'widget', 'w1', '-o', 'json']));
    expect(applied.spec).toEqual({ size: 3, color: 'blue' });
    expect(applied.metadata.generation).toBe(3);

    const table = await ok(['get', 'widgets']);
    expect(table.split('\n')[0]).toMatch(/^NAME\s+SIZE\s+READY$/);
    expect(table).toMatch(/w1\s+3/);
  });

  it('keeps status behind its subresource and lets kubectl wait for a condition', async () => {
    // Through the main endpoint a status change is ignored.
    await ok(['patch', 'widget', 'w1', '--type=merge', '-p', '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}']);
    expect(JSON.parse(await ok(['get', 'widget', 'w1', '-o', 'json'])).status).toBeUndefined();
    const waiting = kubectl(['wait', '--for=condition=Ready', 'widget/w1', '--timeout=20s']);
    const before = JSON.parse(await ok(['get', 'widget', 'w1', '-o', 'json']));
    await ok(['patch', 'widget', 'w1', '--subresource=status', '--type=merge', '-p', '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}']);
    expect((await waiting).code).toBe(0);
    const after = JSON.parse(await ok(['get', 'widget', 'w1', '-o', 'json']));
    expect(after.metadata.generation).toBe(before.metadata.generation);
    expect(await ok(['get', 'widgets'])).toMatch(/w1\s+3\s+True/);
  });

  it('deletes an object with a finalizer only when the finalizer is removed', async () => {
    await ok(['patch', 'widget', 'w1', '--type=merge', '-p', '{"metadata":{"finalizers":["example.com/hold"]}}']);
    await ok(['delete', 'widget', 'w1', '--wait=false']);
    const held = JSON.parse(await ok(['get', 'widget', 'w1', '-o', 'json']));
    expect(held.metadata.deletionTimestamp).toBeTruthy();
    const waiting = kubectl(['wait', '--for=delete', 'widget/w1', '--timeout=20s']);
    await ok(['patch', 'widget', 'w1', '--type=json', '-p', '[{"op":"remove","path":"/metadata/finalizers"}]']);
    expect((await waiting).code).toBe(0);
    const gone = await kubectl(['get', 'widget', 'w1']);
    expect(gone.stderr).toContain('widgets.example.com "w1" not found');
  });

  it('deleting a CRD stops serving its kind', async () => {
    await ok(['apply', '-f', '-'], 'apiVersion: example.com/v1\nkind: Widget\nmetadata: { name: w3 }\nspec: { size: 1 }\n');
    await ok(['delete', 'crd', 'widgets.example.com']);
    const r = await kubectl(['get', 'widgets']);
    expect(r.code).not.toBe(0);
    expect(server.storage.type('example.com', 'widgets')).toBeUndefined();
  });

  it('garbage-collects dependents of a deleted owner in the background, and the contents of a deleted namespace', async () => {
    const owner = JSON.parse(await ok(['get', 'deployment', 'web', '-o', 'json']));
    const dependent = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'web-config', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: owner.metadata.uid }] },
      data: { k: 'v' },
    };
    await ok(['apply', '-f', '-'], JSON.stringify(dependent));
    await ok(['delete', 'deployment', 'web']);
    await ok(['wait', '--for=delete', 'configmap/web-config', '--timeout=20s']);

    await ok(['delete', 'namespace', 'team']);
    expect(await ok(['get', 'configmaps,secrets', '-n', 'team', '-o', 'name'])).toBe('');
    expect((await kubectl(['get', 'namespace', 'team'])).code).not.toBe(0);
  });

  it('serves kubectl diff (server-side dry run) and kubectl apply --server-side', async () => {
    const cm = 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: diffed }\ndata: { a: "1" }\n';
    await ok(['apply', '-f', '-'], cm);
    expect(await kubectl(['diff', '-f', '-'], cm)).toMatchObject({ code: 0, stdout: '' });
    const changed = await kubectl(['diff', '-f', '-'], cm.replace('"1"', '"2"'));
    expect(changed.code).toBe(1);
    expect(changed.stdout).toMatch(/-\s+a: "1"\n\+\s+a: "2"/);
    expect(JSON.parse(await ok(['get', 'configmap', 'diffed', '-o', 'json'])).data).toEqual({ a: '1' });

    const ssa = 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: ssa }\ndata: { a: "1" }\n';
    expect(await ok(['apply', '--server-side', '-f', '-'], ssa)).toContain('serverside-applied');
    await ok(['apply', '--server-side', '-f', '-'], ssa.replace('"1"', '"2"'));
    expect(JSON.parse(await ok(['get', 'configmap', 'ssa', '-o', 'json'])).data).toEqual({ a: '2' });
  });

  it('answers a wrong resourceVersion on replace with 409 Conflict', async () => {
    await ok(['create', 'configmap', 'cc', '--from-literal=a=1']);
    const cm = JSON.parse(await ok(['get', 'configmap', 'cc', '-o', 'json']));
    await ok(['patch', 'configmap', 'cc', '--type=merge', '-p', '{"data":{"a":"2"}}']);
    cm.data.a = '3';
    const r = await kubectl(['replace', '-f', '-'], JSON.stringify(cm));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('the object has been modified');
  });
});
