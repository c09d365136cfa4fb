import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bindingFilesController } from '../../../src/controllers/binding-files-controller.ts';
import { reconcilerTest, type ReconcilerTest } from '../../helpers/reconciler-harness.ts';
import { appFixture } from './fixtures.ts';

let r: ReconcilerTest;
beforeAll(async () => {
  r = await reconcilerTest((t, runtime) => bindingFilesController({ store: t.kiln.store, runtime, log: pino({ level: 'silent' }) }));
});
afterAll(() => r.close());

const lastFor = (app: string) => r.runtime.bindingFileUpdates.filter((u) => u.appGuid === app).at(-1)?.files;

async function upsi(space: string, name: string, credentials: Record<string, string>): Promise<string> {
  const res = await r.t.admin.post('/v3/service_instances', { type: 'user-provided', name, relationships: { space: { data: { guid: space } } }, credentials });
  expect(res.status, res.text).toBe(201);
  return res.body.guid;
}

async function bind(app: string, instance: string): Promise<string> {
  const res = await r.t.admin.post('/v3/service_credential_bindings', { type: 'app', relationships: { service_instance: { data: { guid: instance } }, app: { data: { guid: app } } } });
  expect(res.status, res.text).toBe(201);
  return res.body.guid;
}

describe('the binding files controller', () => {
  it('hands the runtime new files when a binding is made, its credentials change and it is deleted', async () => {
    const f = await appFixture(r.t, 'k8s-app');
    expect((await r.t.admin.patch(`/v3/apps/${f.app}/features/service-binding-k8s`, { enabled: true })).status).toBe(200);
    const inst = await upsi(f.space, 'my-ups', { password: 'p1' });
    const binding = await bind(f.app, inst);
    await r.settle();
    expect(lastFor(f.app)).toMatchObject({ kind: 'k8s', files: { 'my-ups/password': 'p1', 'my-ups/type': 'user-provided' } });

    expect((await r.t.admin.patch(`/v3/service_instances/${inst}`, { credentials: { password: 'p2' } })).status).toBe(200);
    await r.settle();
    expect(lastFor(f.app)!.files['my-ups/password']).toBe('p2');

    expect((await r.t.admin.delete(`/v3/service_credential_bindings/${binding}`)).status).toBe(204);
    await r.settle();
    expect(lastFor(f.app)).toEqual({ kind: 'k8s', files: {} });
  });

  it('gives file-based-vcap-services apps the VCAP_SERVICES JSON, and apps without a file feature nothing', async () => {
    const files = await appFixture(r.t, 'vcap-file-app');
    const plain = await appFixture(r.t, 'env-app');
    expect((await r.t.admin.patch(`/v3/apps/${files.app}/features/file-based-vcap-services`, { enabled: true })).status).toBe(200);
    await bind(files.app, await upsi(files.space, 'ups-a', { token: 'a' }));
    await bind(plain.app, await upsi(plain.space, 'ups-b', { token: 'b' }));
    await r.settle();
    const got = lastFor(files.app)!;
    expect(got.kind).toBe('vcap-services');
    expect(JSON.parse(got.files.vcap_services!)['user-provided'][0]).toMatchObject({ name: 'ups-a', credentials: { token: 'a' } });
    expect(lastFor(plain.app)).toBeUndefined();
  });

  it('leaves running files alone when the bindings cannot be laid out as files', async () => {
    const f = await appFixture(r.t, 'bad-names');
    expect((await r.t.admin.patch(`/v3/apps/${f.app}/features/service-binding-k8s`, { enabled: true })).status).toBe(200);
    await r.settle();
    const before = r.runtime.bindingFileUpdates.length;
    // An upper-case instance name is no servicebinding.io directory name (CC's IncompatibleBindings).
    await bind(f.app, await upsi(f.space, 'Bad_Name', { token: 'x' }));
    await r.settle();
    expect(r.runtime.bindingFileUpdates.slice(before).filter((u) => u.appGuid === f.app)).toEqual([]);
  });
});
