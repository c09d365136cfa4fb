import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';

let t: TestKiln;
beforeAll(async () => {
  t = await createTestKiln();
});
afterAll(() => t.close());

describe('the root document', () => {
  it('gives network_policy_v0/v1 and app_ssh as link objects where root_controller.rb points them', async () => {
    const res = await t.anonymous.get('/');
    expect(res.status).toBe(200);
    const { links } = res.body;
    expect(links.network_policy_v0).toEqual({ href: 'http://kiln.test/networking/v0/external' });
    expect(links.network_policy_v1).toEqual({ href: 'http://kiln.test/networking/v1/external' });
    expect(links.logging).toEqual({ href: 'ws://kiln.test/doppler' });
    expect(links.log_stream).toEqual({ href: 'http://kiln.test/log_stream' });
    expect(links.app_ssh).toEqual({
      href: `ssh.${t.kiln.config.systemDomain}:2222`,
      meta: { host_key_fingerprint: '', oauth_client: 'ssh-proxy' },
    });
  });

  it('answers the network policy paths it links with a clear error in the policy server\'s shape', async () => {
    for (const [method, path] of [['GET', '/networking/v1/external/policies'], ['POST', '/networking/v1/external/policies'], ['GET', '/networking/v0/external/policies']] as const) {
      // Not part of the CC V3 contract: the policy server's own API.
      const res = await t.admin.request(method, path, undefined, { skipSpec: true });
      expect(res.status).toBe(501);
      expect(res.body.error).toMatch(/network policies are not supported/);
    }
    for (const path of ['/doppler/apps/x/stream', '/log_stream/v2/read']) {
      const res = await t.admin.request('GET', path, undefined, { skipSpec: true });
      expect(res.status).toBe(501);
      expect(res.body.error).toMatch(/read app logs from log-cache/);
    }
  });
});
