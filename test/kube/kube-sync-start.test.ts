import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { generatedCrds } from '../../src/kube/crds.ts';
import { KubeSync } from '../../src/kube/kube-sync.ts';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';
import { startApiServer, type ApiServer } from './apiserver/index.ts';

/** Starting the sync before the cluster is ready: it neither blocks Kiln nor spins, and catches up later. */
let t: TestKiln | undefined;
let apiserver: ApiServer | undefined;
let sync: KubeSync | undefined;
afterEach(async () => {
  await sync?.stop();
  await t?.kiln.stop();
  await apiserver?.close();
});

describe('the CRD sync controller before its CRDs exist', () => {
  it('starts at once, retries with backoff while the kinds are missing, and syncs once the CRDs are installed', async () => {
    apiserver = await startApiServer();
    const kubeconfig = apiserver.writeKubeconfig(fs.mkdtempSync(path.join(os.tmpdir(), 'kube-start-')));
    t = await createTestKiln();
    sync = new KubeSync({ store: t.kiln.store, log: pino({ level: 'silent' }), kubeconfig, resyncMs: 200 });
    const started = Date.now();
    await sync.start();
    expect(Date.now() - started).toBeLessThan(1000);
    await new Promise((r) => setTimeout(r, 2500));
    // One informer per kind; with backoff from 1 s each lists at most three times in 2.5 s.
    const lists = apiserver.calls.filter((c) => c.unresolved && c.resource.startsWith('/apis/kiln.dev/')).length;
    expect(lists).toBeGreaterThan(0);
    expect(lists).toBeLessThanOrEqual(3 * generatedCrds().size);

    const crdType = apiserver.storage.type('apiextensions.k8s.io', 'customresourcedefinitions')!;
    for (const crd of generatedCrds().values()) apiserver.storage.create(crdType, undefined, crd);
    apiserver.storage.create(apiserver.storage.type('kiln.dev', 'organizations')!, undefined, { apiVersion: 'kiln.dev/v1alpha1', kind: 'Organization', metadata: { name: 'late' } });
    const deadline = Date.now() + 15_000;
    while (!(await t.kiln.store.db.selectFrom('organizations').select('guid').where('name', '=', 'late').executeTakeFirst())) {
      if (Date.now() > deadline) throw new Error('the org was never made');
      await new Promise((r) => setTimeout(r, 50));
    }
  });
});
