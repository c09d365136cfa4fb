import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import type { Client, TestKiln } from '../helpers/harness.ts';
import { openApiProblems } from '../helpers/openapi.ts';
import { makeZip, tempDir, type FixtureEntry } from '../staging/zip-fixtures.ts';

/** An org, a space and a (buildpack) app in it, created as admin. */
export async function appFixture(t: TestKiln, name: string) {
  const org = await t.org(`${name}-org`);
  const space = await t.space(`${name}-space`, org.guid);
  const res = await t.admin.post('/v3/apps', { name, relationships: { space: { data: { guid: space.guid } } } });
  expect(res.status, res.text).toBe(201);
  return { org, space, app: res.body };
}

/** A zip made by a real zip writer (yazl), entries as the cf CLI writes them. */
export async function zipOf(entries: FixtureEntry[]): Promise<Buffer> {
  const file = path.join(tempDir('kiln-bits-test-'), 'app.zip');
  await makeZip(file, entries);
  const buf = fs.readFileSync(file);
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
  return buf;
}

/** POSTs multipart/form-data as the cf CLI does (`resources` field first, then the `bits` file), spec-checked. */
export async function postMultipart(t: TestKiln, client: Client, url: string, parts: { resources?: unknown; bits?: Buffer; filename?: string }) {
  const form = new FormData();
  if (parts.resources !== undefined) form.append('resources', JSON.stringify(parts.resources));
  if (parts.bits) form.append('bits', new Blob([new Uint8Array(parts.bits)], { type: 'application/octet-stream' }), parts.filename ?? 'package.zip');
  const headers: Record<string, string> = {};
  if (client.token) headers.authorization = `bearer ${client.token}`;
  const res = await t.kiln.app.request(`http://kiln.test${url}`, { method: 'POST', headers, body: form });
  const text = await res.text();
  const body = text && (res.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : text;
  expect(openApiProblems('POST', url, res.status, body === '' ? undefined : body), `${url} → ${res.status} ${text.slice(0, 300)}`).toEqual([]);
  return { status: res.status, body, headers: res.headers, text };
}

/** Files under a directory (relative paths), to prove nothing was left behind. */
export function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true, withFileTypes: true }) as fs.Dirent[])
    .filter((e) => !e.isDirectory())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}
