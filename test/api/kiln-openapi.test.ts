import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KILN_OPENAPI_PATH } from '../../src/api/kiln/openapi.ts';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';
import { cfDefines, kilnOperations, openApiProblems } from '../helpers/openapi.ts';

/** Kiln's OpenAPI document for its extensions of the V3 API: served, complete, and used by the response checks. */

let t: TestKiln;
beforeAll(async () => {
  t = await createTestKiln();
});
afterAll(() => t.close());

describe('GET /v3/kiln-openapi.json', () => {
  it('serves the document kept in docs/, without a token', async () => {
    const res = await t.anonymous.get('/v3/kiln-openapi.json');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('application/json');
    expect(res.body).toEqual(JSON.parse(fs.readFileSync(KILN_OPENAPI_PATH, 'utf8')));
    expect(res.body.openapi).toBe('3.1.0');
  });

  it('describes only operations Kiln routes and the CF document does not define', () => {
    const routed = new Set(t.kiln.app.routes.map((r) => `${r.method} ${r.path}`));
    for (const { method, template } of kilnOperations()) {
      expect(routed.has(`${method} ${template.replace(/\{([^}]+)\}/g, ':$1')}`), `${method} ${template} is routed`).toBe(true);
      expect(cfDefines(method, template), `${method} ${template} is not in openapi.json`).toBe(false);
    }
  });

  it('gives every operation its permitted roles', () => {
    const doc = JSON.parse(fs.readFileSync(KILN_OPENAPI_PATH, 'utf8'));
    for (const { method, template } of kilnOperations()) {
      expect(doc.paths[template][method.toLowerCase()]['x-kiln-roles'], `${method} ${template}`).toEqual(expect.any(String));
    }
  });
});

describe('the response check', () => {
  it('validates extension operations against kiln-openapi.json', () => {
    const lock = {
      guid: '6d5b4a0e-5c1f-4a57-9d3b-2a0c9d5e7f11',
      created_at: '2026-01-01T00:00:00Z',
      updated_at: '2026-01-01T00:00:00Z',
      name: 'deploy',
      reason: null,
      resource_type: 'app',
      ttl_in_seconds: 300,
      expires_at: '2026-01-01T00:05:00Z',
      relationships: { app: { data: { guid: 'a' } }, space: { data: { guid: 's' } } },
      metadata: { labels: {}, annotations: {} },
      links: {
        self: { href: 'http://kiln.test/v3/locks/x' },
        renew: { href: 'http://kiln.test/v3/locks/x', method: 'PATCH' },
        release: { href: 'http://kiln.test/v3/locks/x', method: 'DELETE' },
        space: { href: 'http://kiln.test/v3/spaces/s' },
        organization: { href: 'http://kiln.test/v3/organizations/o' },
      },
    };
    expect(openApiProblems('GET', `/v3/locks/${lock.guid}`, 200, { ...lock, owner: { guid: 'u', name: 'alice' } })).toEqual([]);
    expect(openApiProblems('GET', `/v3/locks/${lock.guid}`, 200, lock).join('\n')).toContain("must have required property 'owner'");
    const withSecret = {
      guid: '6d5b4a0e-5c1f-4a57-9d3b-2a0c9d5e7f12',
      created_at: '2026-01-01T00:00:00Z',
      updated_at: '2026-01-01T00:00:00Z',
      scope: 'foundation',
      host: 'docker.io',
      username: 'robot',
      secret_type: 'password',
      password: 'hunter2',
      relationships: { organization: { data: null }, space: { data: null } },
      metadata: { labels: {}, annotations: {} },
      links: { self: { href: 'http://kiln.test/v3/registry_credentials/x' } },
    };
    expect(openApiProblems('GET', `/v3/registry_credentials/${withSecret.guid}`, 200, withSecret).join('\n')).toContain('must NOT have additional properties');
    expect(openApiProblems('POST', '/v3/locks', 200, lock)).toEqual(['kiln-openapi.json declares no 200 response for POST /v3/locks']);
    // Kiln's own /kiln/v1 API is described (and checked) there too.
    expect(openApiProblems('GET', '/kiln/v1/conditions?kind=app&guid=x', 200, { kind: 'app', guid: 'x' }).join('\n')).toContain("must have required property 'conditions'");
  });
});
