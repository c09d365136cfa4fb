import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KilnError } from '../../src/domain/errors.ts';
import { bitsFor, type Bits } from '../../src/lifecycle/blobs.ts';
import { seedBuiltinBuildpacks, stagingBuildpacks, sweepBuildpackBits } from '../../src/services/buildpacks.ts';
import { stage } from '../../src/staging/buildpack-runner.ts';
import { BUILTIN_BUILDPACKS } from '../../src/staging/builtin-buildpacks.ts';
import { zipDirectory } from '../../src/staging/zip.ts';
import { createTestKiln, type ApiResponse, type Client, type TestKiln } from '../helpers/harness.ts';
import { openApiProblems } from '../helpers/openapi.ts';
import { makeZip } from '../staging/zip-fixtures.ts';

let t: TestKiln;
let user: Client;
let bits: Bits;
let scratch: string;
beforeAll(async () => {
  t = await createTestKiln();
  user = await t.user('buildpacks-user');
  bits = await bitsFor(t.kiln.config);
  scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-bp-test-'));
});
afterAll(async () => {
  await t.close();
  await fs.rm(scratch, { recursive: true, force: true });
});

const NOT_AUTHORIZED = { detail: 'You are not authorized to perform the requested action', title: 'CF-NotAuthorized', code: 10003 };
const NOT_FOUND = { detail: 'Buildpack not found', title: 'CF-ResourceNotFound', code: 10010 };
const unprocessable = (detail: string) => ({ detail, title: 'CF-UnprocessableEntity', code: 10008 });

async function create(body: Record<string, unknown>): Promise<any> {
  const res = await t.admin.post('/v3/buildpacks', body);
  expect(res.status, res.text).toBe(201);
  return res.body;
}

/** name → position of the classic buildpacks, in list order. */
async function positions(): Promise<Array<[string, number]>> {
  const res = await t.admin.get('/v3/buildpacks?lifecycle=buildpack&per_page=100');
  return res.body.resources.map((b: any) => [b.name, b.position]);
}

let fixtureCount = 0;
/** A real buildpack zip: detect accepts apps with `marker.txt`, supply/finalize write files, release names `web`. */
async function buildpackZip(opts: { manifest?: string; wrap?: boolean; scripts?: boolean } = {}): Promise<string> {
  const root = path.join(scratch, `bp-src-${fixtureCount++}`);
  const dir = opts.wrap ? path.join(root, 'my-buildpack-main') : root;
  await fs.mkdir(path.join(dir, 'bin'), { recursive: true });
  if (opts.scripts !== false) {
    const scripts: Record<string, string> = {
      detect: '[ -f "$1/marker.txt" ] && echo uploaded-detect-1.0',
      supply: 'echo supplied > "$3/$4/supplied.txt"',
      finalize: 'echo finalized > "$1/finalized.txt"',
      release: "printf -- '---\\ndefault_process_types:\\n  web: ./run.sh\\n'",
    };
    for (const [name, body] of Object.entries(scripts)) {
      // Mode 0644 on purpose: zips made on Windows carry no execute bits, and the upload must cope.
      await fs.writeFile(path.join(dir, 'bin', name), `#!/bin/sh\n${body}\n`, { mode: 0o644 });
    }
  } else {
    await fs.writeFile(path.join(dir, 'bin', 'README'), 'not a buildpack');
  }
  await fs.writeFile(path.join(dir, 'VERSION'), '1.0.0\n');
  if (opts.manifest) await fs.writeFile(path.join(dir, 'manifest.yml'), opts.manifest);
  const zip = path.join(scratch, `bp-${fixtureCount++}.zip`);
  await zipDirectory(root, zip);
  return zip;
}

/** A zip with one entry whose name climbs out of the extraction root, and one symlink pointing out of it. */
const evilZip = () =>
  makeZip(path.join(scratch, `evil-${fixtureCount++}.zip`), [
    { type: 'file', name: 'bin/supply', content: '#!/bin/sh\n', mode: 0o755 },
    { type: 'file', name: '../../../../escaped_.txt', content: 'gotcha' },
  ]);
const symlinkZip = () =>
  makeZip(path.join(scratch, `link-${fixtureCount++}.zip`), [
    { type: 'file', name: 'bin/supply', content: '#!/bin/sh\n', mode: 0o755 },
    { type: 'symlink', name: 'bin/finalize', target: '/etc/passwd' },
  ]);

/** POSTs a multipart upload the way the cf CLI does (one `bits` file part), validating the answer against the spec. */
async function upload(client: Client, guid: string, file: string | null, filename = 'buildpack.zip'): Promise<ApiResponse> {
  const form = new FormData();
  if (file) form.append('bits', new Blob([await fs.readFile(file)], { type: 'application/zip' }), filename);
  else form.append('other', 'x');
  const headers: Record<string, string> = {};
  if (client.token) headers.authorization = `bearer ${client.token}`;
  const res = await t.kiln.app.request(`http://kiln.test/v3/buildpacks/${guid}/upload`, { method: 'POST', body: form, headers });
  const text = await res.text();
  const body = text ? JSON.parse(text) : undefined;
  expect(openApiProblems('POST', `/v3/buildpacks/${guid}/upload`, res.status, body), text).toEqual([]);
  return { status: res.status, body, headers: res.headers, text };
}

describe('buildpacks', () => {
  it('seeds the built-in buildpacks READY in priority order, readable by every user', async () => {
    const res = await user.get('/v3/buildpacks');
    expect(res.status).toBe(200);
    expect(res.body.resources.map((b: any) => [b.name, b.position, b.state, b.stack, b.enabled, b.locked, b.lifecycle])).toEqual(
      BUILTIN_BUILDPACKS.map((b) => [b.name, b.position, 'READY', null, true, false, 'buildpack']),
    );
    const first = res.body.resources[0];
    expect(first.links).toEqual({
      self: { href: `http://kiln.test/v3/buildpacks/${first.guid}` },
      upload: { href: `http://kiln.test/v3/buildpacks/${first.guid}/upload`, method: 'POST' },
    });
    const got = await user.get(`/v3/buildpacks/${first.guid}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(first);
    expect((await t.anonymous.get('/v3/buildpacks')).status).toBe(401);

    // Idempotent, and a deleted built-in stays deleted.
    await seedBuiltinBuildpacks(t.kiln.store);
    expect((await user.get('/v3/buildpacks')).body.pagination.total_results).toBe(BUILTIN_BUILDPACKS.length);
  });

  it('resolves the built-ins for staging: auto-detection order and by name', async () => {
    const auto = await stagingBuildpacks(t.kiln.store.db, bits, undefined, 'cflinuxfs4');
    expect(auto).toEqual(BUILTIN_BUILDPACKS.map((b) => ({ name: b.name, dir: b.dir })));
    const named = await stagingBuildpacks(t.kiln.store.db, bits, ['binary_buildpack', 'nodejs_buildpack'], 'cflinuxfs4');
    expect(named.map((b) => b.name)).toEqual(['binary_buildpack', 'nodejs_buildpack']);
  });

  it('creates with defaults and inserts at a position, shifting the others', async () => {
    const a = await create({ name: 'pos_a' });
    expect(a).toMatchObject({ name: 'pos_a', state: 'AWAITING_UPLOAD', filename: null, stack: null, position: 1, lifecycle: 'buildpack', enabled: true, locked: false, metadata: { labels: {}, annotations: {} } });
    const b = await create({ name: 'pos_b', position: 3, enabled: false, locked: true, stack: 'cflinuxfs4', metadata: { labels: { team: 'x' } } });
    expect(b).toMatchObject({ position: 3, enabled: false, locked: true, stack: 'cflinuxfs4', metadata: { labels: { team: 'x' }, annotations: {} } });
    const c = await create({ name: 'pos_c', position: 999 });
    expect(c.position).toBe(6);
    expect(await positions()).toEqual([
      ['pos_a', 1],
      ['nodejs_buildpack', 2],
      ['pos_b', 3],
      ['staticfile_buildpack', 4],
      ['binary_buildpack', 5],
      ['pos_c', 6],
    ]);
    // cnb buildpacks have their own positions.
    const cnb = await create({ name: 'pos_cnb', lifecycle: 'cnb' });
    expect(cnb).toMatchObject({ lifecycle: 'cnb', position: 1 });
    const audit = await t.kiln.store.db.selectFrom('audit_events').select('type').where('target_guid', '=', b.guid).orderBy('id').execute();
    expect(audit.map((e) => e.type)).toEqual(['audit.buildpack.create']);
  });

  it('rejects bad bodies, duplicates, unknown stacks and non-admins without writing', async () => {
    const before = (await t.admin.get('/v3/buildpacks')).body.pagination.total_results;
    const cases: Array<[unknown, string]> = [
      [{}, "Name can't be blank"],
      [{ name: '' }, "Name can't be blank"],
      [{ name: 5 }, 'Name must be a string'],
      [{ name: 'has space' }, 'Name is invalid'],
      [{ name: 'n'.repeat(251) }, 'Name is too long (maximum is 250 characters)'],
      [{ name: 'x', position: 0 }, 'Position must be greater than or equal to 1'],
      [{ name: 'x', position: 1.5 }, 'Position must be an integer'],
      [{ name: 'x', position: 'one' }, 'Position is not a number'],
      [{ name: 'x', enabled: 'yes' }, 'Enabled must be a boolean'],
      [{ name: 'x', locked: 1 }, 'Locked must be a boolean'],
      [{ name: 'x', stack: 4 }, 'Stack must be a string'],
      [{ name: 'x', lifecycle: 'docker' }, 'Lifecycle must be either "buildpack" or "cnb"'],
      [{ name: 'x', colour: 'red' }, "Unknown field(s): 'colour'"],
      [{ name: 'x', stack: 'nope' }, "Stack 'nope' does not exist"],
      [{ name: 'pos_a' }, "Buildpack with name 'pos_a' and an unassigned stack already exists"],
      [{ name: 'POS_B', stack: 'cflinuxfs4' }, "Buildpack with name 'POS_B', stack 'cflinuxfs4' and lifecycle 'buildpack' already exists"],
    ];
    for (const [body, detail] of cases) {
      const res = await t.admin.post('/v3/buildpacks', body);
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect(res.body.errors[0], JSON.stringify(body)).toEqual(unprocessable(detail));
    }
    // The same name is fine for another stack or lifecycle.
    await create({ name: 'pos_a', stack: 'cflinuxfs4' });
    await create({ name: 'pos_a', lifecycle: 'cnb' });

    const denied = await user.post('/v3/buildpacks', { name: 'by_user' });
    expect(denied.status).toBe(403);
    expect(denied.body.errors).toEqual([NOT_AUTHORIZED]);
    // 403 wins over a bad body for non-admins (authorization is checked first).
    expect((await user.post('/v3/buildpacks', { name: 5 })).status).toBe(403);
    expect((await t.admin.get('/v3/buildpacks')).body.pagination.total_results).toBe(before + 2);
  });

  it('lists with filters, label selector and order_by', async () => {
    const byNames = await user.get('/v3/buildpacks?names=pos_a,pos_c');
    expect(byNames.body.resources.map((b: any) => `${b.name}/${b.stack}/${b.lifecycle}`).sort()).toEqual(
      ['pos_a/null/buildpack', 'pos_c/null/buildpack', 'pos_a/cflinuxfs4/buildpack', 'pos_a/null/cnb'].sort(),
    );
    // Default order: lifecycle, then position.
    const lifecycles = byNames.body.resources.map((b: any) => b.lifecycle);
    expect(lifecycles).toEqual([...lifecycles].sort());
    expect(byNames.body.pagination.total_results).toBe(4);

    const stackless = await user.get('/v3/buildpacks?stacks=');
    expect(stackless.body.resources.every((b: any) => b.stack === null)).toBe(true);
    const onStack = await user.get('/v3/buildpacks?stacks=cflinuxfs4');
    expect(onStack.body.resources.map((b: any) => b.name).sort()).toEqual(['pos_a', 'pos_b']);
    const both = await user.get('/v3/buildpacks?stacks=cflinuxfs4,&lifecycle=buildpack');
    expect(both.body.pagination.total_results).toBe((await positions()).length);

    const labelled = await user.get('/v3/buildpacks?label_selector=team=x');
    expect(labelled.body.resources.map((b: any) => b.name)).toEqual(['pos_b']);

    const desc = await user.get('/v3/buildpacks?order_by=-position&lifecycle=buildpack');
    const ps = desc.body.resources.map((b: any) => b.position);
    expect(ps).toEqual([...ps].sort((x: number, y: number) => y - x));
    expect((await user.get('/v3/buildpacks?order_by=created_at')).status).toBe(200);
    const bad = await user.get('/v3/buildpacks?order_by=name');
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0].detail).toContain("Order by can only be: 'created_at', 'updated_at', 'position', 'lifecycle'");
    expect((await user.get('/v3/buildpacks?lifecycle=docker')).status).toBe(400);
    expect((await user.get('/v3/buildpacks?space_guids=x')).status).toBe(400);
  });

  it('updates fields and moves positions both ways', async () => {
    const list = await positions();
    const c = (await t.admin.get('/v3/buildpacks?names=pos_c')).body.resources[0];
    const up = await t.admin.patch(`/v3/buildpacks/${c.guid}`, { position: 1, enabled: false, metadata: { annotations: { note: 'moved' } } });
    expect(up.status, up.text).toBe(200);
    expect(up.body).toMatchObject({ position: 1, enabled: false, metadata: { annotations: { note: 'moved' } } });
    const after = await positions();
    expect(after[0]).toEqual(['pos_c', 1]);
    expect(after.map(([, p]) => p)).toEqual(list.map((_, i) => i + 1));
    expect(after.slice(1).map(([n]) => n)).toEqual(list.filter(([n]) => n !== 'pos_c').map(([n]) => n));

    const down = await t.admin.patch(`/v3/buildpacks/${c.guid}`, { position: 500 });
    expect(down.body.position).toBe(list.length);
    const last = await positions();
    expect(last.at(-1)).toEqual(['pos_c', list.length]);
    expect(last.map(([, p]) => p)).toEqual(list.map((_, i) => i + 1));

    const renamed = await t.admin.patch(`/v3/buildpacks/${c.guid}`, { name: 'pos_c2', stack: 'cflinuxfs4', locked: true });
    expect(renamed.body).toMatchObject({ name: 'pos_c2', stack: 'cflinuxfs4', locked: true });
    const again = await t.admin.patch(`/v3/buildpacks/${c.guid}`, { stack: 'cflinuxfs4' });
    expect(again.status).toBe(200);
  });

  it('rejects bad updates and non-admins (404 before 403)', async () => {
    const c = (await t.admin.get('/v3/buildpacks?names=pos_c2')).body.resources[0];
    const cases: Array<[unknown, string]> = [
      [{ stack: 'other' }, 'Buildpack stack cannot be changed'],
      [{ name: 'pos_b' }, "Buildpack with name 'pos_b', stack 'cflinuxfs4' and lifecycle 'buildpack' already exists"],
      [{ position: -1 }, 'Position must be greater than or equal to 1'],
      [{ lifecycle: 'cnb' }, "Unknown field(s): 'lifecycle'"],
      [{ enabled: 'no' }, 'Enabled must be a boolean'],
    ];
    for (const [body, detail] of cases) {
      const res = await t.admin.patch(`/v3/buildpacks/${c.guid}`, body);
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect(res.body.errors[0]).toEqual(unprocessable(detail));
    }
    const a = (await t.admin.get('/v3/buildpacks?names=pos_a&stacks=')).body.resources.find((b: any) => b.lifecycle === 'buildpack');
    const stackMissing = await t.admin.patch(`/v3/buildpacks/${a.guid}`, { stack: 'missing' });
    expect(stackMissing.body.errors[0]).toEqual(unprocessable("Stack 'missing' does not exist"));

    const missing = '00000000-0000-4000-8000-000000000000';
    expect((await t.admin.patch(`/v3/buildpacks/${missing}`, {})).body.errors).toEqual([NOT_FOUND]);
    expect((await user.get(`/v3/buildpacks/${missing}`)).body.errors).toEqual([NOT_FOUND]);
    expect((await user.patch(`/v3/buildpacks/${missing}`, {})).status).toBe(404);
    const denied = await user.patch(`/v3/buildpacks/${c.guid}`, { enabled: true });
    expect(denied.status).toBe(403);
    expect(denied.body.errors).toEqual([NOT_AUTHORIZED]);
    expect((await user.delete(`/v3/buildpacks/${c.guid}`)).status).toBe(403);
    expect((await upload(user, c.guid, null)).status).toBe(403);
    const global = await t.user('bp-reader', ['cloud_controller.admin_read_only']);
    expect((await global.get(`/v3/buildpacks/${c.guid}`)).status).toBe(200);
    expect((await global.patch(`/v3/buildpacks/${c.guid}`, { enabled: true })).status).toBe(403);
  });

  it('uploads a real buildpack zip (READY, filename, blob) and stages an app with it', async () => {
    const bp = await create({ name: 'uploaded_bp', position: 1 });
    const zip = await buildpackZip({ wrap: true });
    const res = await upload(t.admin, bp.guid, zip, 'my-buildpack-v1.zip');
    expect(res.status, res.text).toBe(202);
    expect(res.body).toMatchObject({ guid: bp.guid, state: 'READY', filename: 'my-buildpack-v1.zip', stack: null, position: 1 });
    const job = await t.awaitJob(res.headers.get('location'));
    expect(job).toMatchObject({ state: 'COMPLETE', operation: 'buildpack.upload', errors: [] });
    const row = await t.kiln.store.db.selectFrom('buildpacks').selectAll().where('guid', '=', bp.guid).executeTakeFirstOrThrow();
    expect(row.blob_key).toMatch(new RegExp(`^buildpacks/${bp.guid}/[0-9a-f]{64}$`));
    expect(await bits.blobstore.exists(row.blob_key!)).toBe(true);

    // Resolution: first in auto-detection order, and by name; extracted once, executable, top folder unwrapped.
    const auto = await stagingBuildpacks(t.kiln.store.db, bits, undefined, 'cflinuxfs4');
    expect(auto[0]!.name).toBe('uploaded_bp');
    expect(auto.map((b) => b.name)).not.toContain('pos_a'); // AWAITING_UPLOAD is skipped
    expect(auto.map((b) => b.name)).not.toContain('pos_c2'); // disabled is skipped
    const [named] = await stagingBuildpacks(t.kiln.store.db, bits, ['uploaded_bp'], 'cflinuxfs4');
    expect(named!.dir).toBe(auto[0]!.dir);
    expect(((await fs.stat(path.join(named!.dir, 'bin', 'supply'))).mode & 0o111) !== 0).toBe(true);

    // Lazily re-extracted when the cache is gone.
    await fs.rm(named!.dir, { recursive: true });
    const [again] = await stagingBuildpacks(t.kiln.store.db, bits, ['uploaded_bp'], 'cflinuxfs4');
    expect(await fs.readFile(path.join(again!.dir, 'VERSION'), 'utf8')).toBe('1.0.0\n');

    const app = path.join(scratch, 'app');
    await fs.mkdir(app, { recursive: true });
    await fs.writeFile(path.join(app, 'marker.txt'), 'x');
    const result = await stage({
      appDir: app,
      buildpacks: auto,
      workDir: path.join(scratch, 'work'),
      cacheDir: path.join(scratch, 'cache'),
      dropletPath: path.join(scratch, 'droplet.tgz'),
    });
    expect(result.buildpacks.map((b) => b.name)).toEqual(['uploaded_bp']);
    expect(result.detectedBuildpack).toBe('uploaded-detect-1.0');
    expect(result.processTypes).toEqual({ web: './run.sh' });
  });

  it('re-uploads replace the bits; locked buildpacks refuse new bits', async () => {
    const bp = (await t.admin.get('/v3/buildpacks?names=uploaded_bp')).body.resources[0];
    const oldKey = (await t.kiln.store.db.selectFrom('buildpacks').select('blob_key').where('guid', '=', bp.guid).executeTakeFirstOrThrow()).blob_key!;
    const res = await upload(t.admin, bp.guid, await buildpackZip({ manifest: 'stack: cflinuxfs4\n' }), 'v2.zip');
    expect(res.status, res.text).toBe(202);
    // A stackless buildpack adopts the stack its manifest.yml declares.
    expect(res.body).toMatchObject({ filename: 'v2.zip', stack: 'cflinuxfs4', state: 'READY' });
    expect(await bits.blobstore.exists(oldKey)).toBe(false);

    const mismatch = await upload(t.admin, bp.guid, await buildpackZip({ manifest: 'stack: windows\n' }));
    expect(mismatch.status).toBe(422);
    expect(mismatch.body.errors[0]).toEqual({ detail: 'Uploaded buildpack stack (windows) does not match cflinuxfs4', title: 'CF-BuildpackStacksDontMatch', code: 390011 });

    const fresh = await create({ name: 'stackless_bp' });
    const unknownStack = await upload(t.admin, fresh.guid, await buildpackZip({ manifest: 'stack: nowhere\n' }));
    expect(unknownStack.body.errors[0]).toMatchObject({ detail: 'Uploaded buildpack stack (nowhere) does not exist', title: 'CF-BuildpackStackDoesNotExist' });
    expect((await t.admin.get(`/v3/buildpacks/${fresh.guid}`)).body).toMatchObject({ state: 'AWAITING_UPLOAD', filename: null, stack: null });

    const locked = await t.admin.patch(`/v3/buildpacks/${bp.guid}`, { locked: true });
    expect(locked.body.locked).toBe(true);
    const refused = await upload(t.admin, bp.guid, await buildpackZip());
    expect(refused.status).toBe(422);
    expect(refused.body.errors[0]).toEqual(unprocessable('Buildpack is locked'));
    expect((await t.admin.get(`/v3/buildpacks/${bp.guid}`)).body.filename).toBe('v2.zip');
    await t.admin.patch(`/v3/buildpacks/${bp.guid}`, { locked: false });
  });

  it('rejects missing, non-zip, empty, unsafe and non-buildpack uploads, keeping nothing', async () => {
    const bp = await create({ name: 'bad_uploads' });
    const blobsBefore = await fs.readdir(path.join(bits.blobstore.root, 'buildpacks')).catch(() => []);
    const empty = path.join(scratch, 'empty.zip');
    await fs.writeFile(empty, '');
    const garbage = path.join(scratch, 'garbage.zip');
    await fs.writeFile(garbage, 'this is not a zip at all');
    const cases: Array<[string | null, string, string]> = [
      [null, 'buildpack.zip', "Uploaded buildpack file is invalid: A buildpack zip file must be uploaded as 'bits'"],
      [await buildpackZip(), 'buildpack.tgz', 'Uploaded buildpack file is invalid: buildpack.tgz is not a zip'],
      [empty, 'empty.zip', 'Uploaded buildpack file is invalid: empty.zip cannot be empty'],
      [garbage, 'garbage.zip', 'Buildpack zip error: Invalid zip archive'],
      [await evilZip(), 'evil.zip', 'Buildpack zip error: Relative path(s) outside of root folder'],
      [await symlinkZip(), 'link.zip', 'Buildpack zip error:'],
      [await buildpackZip({ scripts: false }), 'nobin.zip', 'Buildpack zip error: no bin/supply, bin/finalize or bin/compile found'],
    ];
    for (const [file, name, detail] of cases) {
      const res = await upload(t.admin, bp.guid, file, name);
      expect(res.status, name).toBe(422);
      expect(res.body.errors[0].title).toBe('CF-UnprocessableEntity');
      expect(res.body.errors[0].detail, name).toContain(detail);
    }
    const json = await t.admin.post(`/v3/buildpacks/${bp.guid}/upload`, {});
    expect(json.status).toBe(422);
    expect((await t.admin.get(`/v3/buildpacks/${bp.guid}`)).body).toMatchObject({ state: 'AWAITING_UPLOAD', filename: null });
    expect(await fs.readdir(path.join(bits.blobstore.root, 'buildpacks')).catch(() => [])).toEqual(blobsBefore);
    await expect(fs.stat(path.resolve(bits.workRoot, 'buildpack-x', '../../../../escaped_.txt'))).rejects.toThrow();
    expect((await upload(t.admin, '00000000-0000-4000-8000-000000000000', await buildpackZip())).body.errors).toEqual([NOT_FOUND]);
  });

  it('refuses URLs and unusable names when resolving for staging', async () => {
    const failure = async (names: string[]) => {
      const err = await stagingBuildpacks(t.kiln.store.db, bits, names, 'cflinuxfs4').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KilnError);
      return (err as KilnError).detail;
    };
    expect(await failure(['https://user:secret@github.com/org/bp.git'])).toContain('buildpack URLs are not supported (https://***:***@github.com/org/bp.git)');
    expect(await failure(['git@github.com:org/bp.git'])).toContain('buildpack URLs are not supported');
    expect(await failure(['nope'])).toContain(`buildpack "nope" must be an existing admin buildpack for stack 'cflinuxfs4'`);
    expect(await failure(['pos_c2'])).toContain('buildpack "pos_c2" is disabled');
    expect(await failure(['bad_uploads'])).toContain('buildpack "bad_uploads" has no bits uploaded');
    // A buildpack for another stack is not a candidate.
    expect((await stagingBuildpacks(t.kiln.store.db, bits, undefined, 'other-stack')).map((b) => b.name)).not.toContain('uploaded_bp');
  });

  it('deletes asynchronously, closing the position gap and removing the bits', async () => {
    const bp = (await t.admin.get('/v3/buildpacks?names=uploaded_bp')).body.resources[0];
    const key = (await t.kiln.store.db.selectFrom('buildpacks').select('blob_key').where('guid', '=', bp.guid).executeTakeFirstOrThrow()).blob_key!;
    const before = await positions();
    const res = await t.admin.delete(`/v3/buildpacks/${bp.guid}`);
    expect(res.status).toBe(202);
    const job = await t.awaitJob(res.headers.get('location'));
    expect(job).toMatchObject({ state: 'COMPLETE', operation: 'buildpack.delete' });
    expect((await t.admin.get(`/v3/buildpacks/${bp.guid}`)).status).toBe(404);
    const after = await positions();
    expect(after.map(([n]) => n)).toEqual(before.map(([n]) => n).filter((n) => n !== 'uploaded_bp'));
    expect(after.map(([, p]) => p)).toEqual(after.map((_, i) => i + 1));
    await sweepBuildpackBits(t.kiln, bits);
    expect(await bits.blobstore.exists(key)).toBe(false);
    const audit = await t.kiln.store.db.selectFrom('audit_events').select('type').where('target_guid', '=', bp.guid).orderBy('id').execute();
    expect(audit.map((e) => e.type)).toEqual(['audit.buildpack.create', 'audit.buildpack.upload', 'audit.buildpack.upload', 'audit.buildpack.update', 'audit.buildpack.update', 'audit.buildpack.delete']);

    // A deleted built-in stays deleted across restarts (seeding is once per name).
    const node = (await t.admin.get('/v3/buildpacks?names=nodejs_buildpack')).body.resources[0];
    await t.awaitJob((await t.admin.delete(`/v3/buildpacks/${node.guid}`)).headers.get('location'));
    await seedBuiltinBuildpacks(t.kiln.store);
    expect((await t.admin.get('/v3/buildpacks?names=nodejs_buildpack')).body.resources).toEqual([]);
  });
});

describe('buildpack upload size limit', () => {
  it('cuts off uploads larger than the configured limit with a 422, storing nothing', async () => {
    const small = await createTestKiln({ KILN_MAX_PACKAGE_BYTES: '300' });
    try {
      const created = await small.admin.post('/v3/buildpacks', { name: 'too_big' });
      expect(created.status).toBe(201);
      const zip = await buildpackZip();
      expect((await fs.stat(zip)).size).toBeGreaterThan(300);
      const form = new FormData();
      form.append('bits', new Blob([await fs.readFile(zip)]), 'big.zip');
      const res = await small.kiln.app.request(`http://kiln.test/v3/buildpacks/${created.body.guid}/upload`, {
        method: 'POST',
        body: form,
        headers: { authorization: `bearer ${small.admin.token}` },
      });
      expect(res.status).toBe(422);
      expect(((await res.json()) as { errors: unknown[] }).errors[0]).toEqual(unprocessable('Upload may not be larger than 300 bytes'));
      expect((await small.admin.get(`/v3/buildpacks/${created.body.guid}`)).body).toMatchObject({ state: 'AWAITING_UPLOAD', filename: null });
      const smallBits = await bitsFor(small.kiln.config);
      expect(await fs.readdir(path.join(smallBits.blobstore.root, 'buildpacks')).catch(() => [])).toEqual([]);
    } finally {
      await small.close();
    }
  });
});
