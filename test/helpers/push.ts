import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import { makeZip } from '../staging/zip-fixtures.ts';
import { cliCall, cliLogin, type ServerProcess } from './server-process.ts';

/**
 * The cf CLI v8 push flow (cf-cli-flows §5.4) request by request, against a running server, plus requests through
 * Kiln's router. Shared by the end-to-end tests.
 */

export const FIXTURES = path.resolve(import.meta.dirname, '../fixtures/apps');

export async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A zip as the CLI sends it (yazl, Unix modes); unsafe names are allowed, for the malicious-upload case. */
export async function zipEntries(entries: Array<{ name: string; data: Buffer }>): Promise<Buffer> {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-zip-')), 'package.zip');
  await makeZip(file, entries.map((e) => ({ type: 'file' as const, name: e.name, content: e.data })));
  const buf = fs.readFileSync(file);
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
  return buf;
}

export function appFiles(dir: string) {
  return fs.readdirSync(dir).map((name) => {
    const data = fs.readFileSync(path.join(dir, name));
    return { name, data, sha1: createHash('sha1').update(data).digest('hex') };
  });
}

export interface StatsEntry {
  index: number;
  state: string;
  details: string | null;
}

/** Helpers bound to one server, token and space. */
export function pushClient(opts: { api: string; token: string; spaceGuid: string }) {
  const { api, token, spaceGuid } = opts;
  const call = (method: string, url: string, body?: unknown) => cliCall(method, `${api}${url}`, token, body);

  /** A GET through the router: the Host header names the route, the connection goes to Kiln's port. */
  function viaRouter(host: string, urlPath = '/'): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
    const { hostname, port } = new URL(api);
    return new Promise((resolve, reject) => {
      const req = http.request({ hostname, port, path: urlPath, headers: { host }, agent: false }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  async function upload(packageGuid: string, zip: Buffer, resources: unknown[] = []) {
    const form = new FormData();
    form.append('resources', JSON.stringify(resources));
    form.append('bits', new Blob([new Uint8Array(zip)], { type: 'application/octet-stream' }), 'package.zip');
    const res = await fetch(`${api}/v3/packages/${packageGuid}/upload`, { method: 'POST', headers: { Authorization: `bearer ${token}` }, body: form });
    // Test code reads a few fields of the package or error document.
    return { status: res.status, body: (await res.json()) as any };
  }

  async function stats(appGuid: string): Promise<StatsEntry[]> {
    const procs = await call('GET', `/v3/apps/${appGuid}/processes`);
    const web = procs.body.resources.find((p: { type: string }) => p.type === 'web');
    return (await call('GET', `/v3/processes/${web.guid}/stats`)).body.resources as StatsEntry[];
  }

  /** Steps 1–3: apply a manifest (`extra` is YAML under the application, indented by 2) and find the app. */
  async function applyManifest(name: string, extra = ''): Promise<string> {
    const manifest = await fetch(`${api}/v3/spaces/${spaceGuid}/actions/apply_manifest`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-yaml', Authorization: `bearer ${token}` },
      body: `applications:\n- name: ${name}\n  default-route: true\n${extra}`,
    });
    expect(manifest.status).toBe(202);
    const jobUrl = manifest.headers.get('location')!;
    const job = await until('apply_manifest job', async () => {
      const j = await cliCall('GET', jobUrl, token);
      return j.body.state === 'PROCESSING' ? undefined : j.body;
    });
    expect(job.state, JSON.stringify(job.errors)).toBe('COMPLETE');
    const apps = await call('GET', `/v3/apps?names=${name}&space_guids=${spaceGuid}`);
    return apps.body.resources[0].guid as string;
  }

  /** Steps 5.1–5.7: resource match, package, upload, build; returns the STAGED droplet's guid. */
  async function stage(appGuid: string, dir: string): Promise<string> {
    const files = appFiles(dir);
    const matches = await call('POST', '/v3/resource_matches', {
      resources: files.map((f) => ({ path: f.name, mode: '644', checksum: { value: f.sha1 }, size_in_bytes: f.data.length })),
    });
    expect(matches.status).toBe(201);
    const pkg = await call('POST', '/v3/packages', { type: 'bits', relationships: { app: { data: { guid: appGuid } } } });
    expect(pkg.status).toBe(201);
    const uploaded = await upload(pkg.body.guid, await zipEntries(files));
    expect(uploaded.status, JSON.stringify(uploaded.body)).toBe(200);
    expect(uploaded.body.guid).toBe(pkg.body.guid);
    await until('package READY', async () => {
      const p = await call('GET', `/v3/packages/${pkg.body.guid}`);
      expect(p.body.state).not.toBe('FAILED');
      return p.body.state === 'READY' ? true : undefined;
    });
    const build = await call('POST', '/v3/builds', { package: { guid: pkg.body.guid } });
    expect(build.status).toBe(201);
    const staged = await until(
      'build STAGED',
      async () => {
        const b = await call('GET', `/v3/builds/${build.body.guid}`);
        if (b.body.state === 'FAILED') throw new Error(`staging failed: ${b.body.error}`);
        return b.body.state === 'STAGED' ? b.body : undefined;
      },
      60_000,
    );
    const droplet = await call('GET', `/v3/droplets/${staged.droplet.guid}`);
    expect(droplet.body.state).toBe('STAGED');
    return droplet.body.guid as string;
  }

  /** cf push APP from DIR, request by request. Returns the app guid once its instances are RUNNING (or CRASHED). */
  async function push(name: string, dir: string, manifestExtra = ''): Promise<string> {
    const appGuid = await applyManifest(name, manifestExtra);
    const droplet = await stage(appGuid, dir);
    const current = await call('PATCH', `/v3/apps/${appGuid}/relationships/current_droplet`, { data: { guid: droplet } });
    expect(current.status).toBe(200);
    const restarted = await call('POST', `/v3/apps/${appGuid}/actions/restart`);
    expect(restarted.status).toBe(200);
    await until('instances up', async () => {
      const s = await stats(appGuid);
      return s.length > 0 && s.every((i) => i.state === 'RUNNING' || i.state === 'CRASHED') ? s : undefined;
    });
    return appGuid;
  }

  return { call, viaRouter, upload, stats, applyManifest, stage, push };
}

/** Logs in as admin on a started server and creates an org with a space `dev`: where every e2e file starts. */
export async function adminTarget(server: ServerProcess, orgName: string) {
  const api = server.url;
  const token = (await cliLogin(api, 'admin', server.adminPassword)).access_token;
  const org = await cliCall('POST', `${api}/v3/organizations`, token, { name: orgName });
  const space = await cliCall('POST', `${api}/v3/spaces`, token, { name: 'dev', relationships: { organization: { data: { guid: org.body.guid } } } });
  const spaceGuid = space.body.guid as string;
  return { api, token, spaceGuid, client: pushClient({ api, token, spaceGuid }) };
}
