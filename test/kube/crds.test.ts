import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderCrd } from '../../src/kube/crd-files.ts';
import { generatedCrds } from '../../src/kube/crds.ts';
import { startApiServer, type ApiServer } from './apiserver/index.ts';
import { kubectlFor, kubectlPath } from './kubectl.ts';

const repo = path.resolve(import.meta.dirname, '../..');
const crdsDir = path.join(repo, 'crds');

describe('crds/', () => {
  it('is what the zod schemas generate (run `npm run crds` after changing src/kube/schemas.ts)', () => {
    const generated = generatedCrds();
    expect(fs.readdirSync(crdsDir).filter((f) => f.endsWith('.yaml')).sort()).toEqual([...generated.keys()].sort());
    for (const [file, crd] of generated) expect(fs.readFileSync(path.join(crdsDir, file), 'utf8'), file).toBe(renderCrd(crd));
  });
});

describe.skipIf(!kubectlPath())('the kiln.dev CRDs in a Kubernetes API server', () => {
  let server: ApiServer;
  let kubectl: ReturnType<typeof kubectlFor>;
  beforeAll(async () => {
    server = await startApiServer();
    kubectl = kubectlFor(server.writeKubeconfig(fs.mkdtempSync(path.join(os.tmpdir(), 'kube-'))));
  });
  afterAll(() => server?.close());

  it('are accepted by kubectl apply and serve Organization, Space and App', async () => {
    const applied = await kubectl(['apply', '-k', crdsDir]);
    expect(applied.stderr).toBe('');
    expect((await kubectl(['wait', '--for=condition=Established', 'crd', '--all', '--timeout=10s'])).code).toBe(0);
    const example = await kubectl(['apply', '-f', path.join(repo, 'examples/kube/hello.yaml')]);
    expect(example.stderr).toBe('');
    expect(example.stdout).toContain('app.kiln.dev/hello created');
    const table = await kubectl(['get', 'apps']);
    expect(table.stdout.split('\n')[0]).toMatch(/^NAME\s+STATE\s+INSTANCES\s+URL\s+AGE$/);
 
    // The other examples validate against the generated schemas, and `kubectl get kiln` lists every kind.
    for (const file of ['services.yaml', 'gitsource.yaml']) {
      const applied = await kubectl(['apply', '-f', path.join(repo, 'examples/kube', file)]);
      expect(applied.stderr, file).toBe('');
    }
    const all = await kubectl(['get', 'kiln']);
    for (const kind of ['app.kiln.dev/hello', 'serviceinstance.kiln.dev/db', 'servicebinding.kiln.dev/hello-db', 'route.kiln.dev/hello-www', 'gitsource.kiln.dev/shop']) expect(all.stdout).toContain(kind);
  });

  it('refuse a ServiceInstance with inline credentials and a Route without a domain', async () => {
    const inline = await kubectl(['apply', '-f', '-'], 'apiVersion: kiln.dev/v1alpha1\nkind: ServiceInstance\nmetadata: { name: inline }\nspec: { org: o, space: s, type: user-provided, credentials: { password: x } }\n');
    expect(inline.stderr).toMatch(/spec.credentials.secretRef: Required value|unknown field "spec.credentials.password"/);
    const nodomain = await kubectl(['apply', '-f', '-'], 'apiVersion: kiln.dev/v1alpha1\nkind: Route\nmetadata: { name: r }\nspec: { org: o, space: s, host: h }\n');
    expect(nodomain.stderr).toMatch(/spec.domain: Required value/);
  });

  it('refuse an App without a space and one with a field the manifest does not have', async () => {
    const missing = await kubectl(['apply', '-f', '-'], 'apiVersion: kiln.dev/v1alpha1\nkind: App\nmetadata: { name: nospace }\nspec: { org: demo }\n');
    expect(missing.stderr).toMatch(/spec.space: Required value/);
    const unknown = await kubectl(['apply', '-f', '-'], 'apiVersion: kiln.dev/v1alpha1\nkind: App\nmetadata: { name: extra }\nspec: { org: demo, space: dev, replicas: 2 }\n');
    expect(unknown.stderr).toContain('unknown field "spec.replicas"');
    const wrongType = await kubectl(['apply', '-f', '-'], 'apiVersion: kiln.dev/v1alpha1\nkind: App\nmetadata: { name: typed }\nspec: { org: demo, space: dev, instances: many }\n');
    expect(wrongType.stderr).toMatch(/spec.instances/);
  });
});
