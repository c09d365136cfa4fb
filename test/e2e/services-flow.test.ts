import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, pushClient, until } from '../helpers/push.ts';
import { cliCall, cliLogin, startServerProcess, type ServerProcess } from '../helpers/server-process.ts';
import { startFixtureBroker, type FixtureBroker } from '../fixtures/broker/broker.ts';

/**
 * Replays the cf CLI's service commands (research/services.md §2) request by request against the real server and
 * a real (fixture) OSBAPI broker: create-service-broker, enable-service-access, marketplace, create-service,
 * create-user-provided-service, bind-service, restart (the app sees VCAP_SERVICES through the router), env,
 * create-service-key, services, delete-service — then an async provision that survives a SIGKILL of Kiln.
 */

let server: ServerProcess;
let broker: FixtureBroker;
let api: string;
let token: string;
let spaceGuid: string;
let orgGuid: string;
let client: ReturnType<typeof pushClient>;
const ENV = { KILN_BROKER_POLL_INTERVAL_SECONDS: '0.2' };

const call = (method: string, url: string, body?: unknown) => cliCall(method, `${api}${url}`, token, body);

/** The CLI polls a job's Location every few seconds until COMPLETE or FAILED (`-w`); tests poll faster. */
async function pollJob(location: string | null, until_: string[] = ['COMPLETE', 'FAILED']) {
  expect(location).toBeTruthy();
  return until(`job ${location}`, async () => {
    const res = await cliCall('GET', location!, token);
    return until_.includes(res.body.state) ? res.body : undefined;
  }, 30_000, 50);
}

beforeAll(async () => {
  broker = await startFixtureBroker();
  server = await startServerProcess({ env: ENV });
  api = server.url;
  token = (await cliLogin(api, 'admin', server.adminPassword)).access_token;
  const org = await call('POST', '/v3/organizations', { name: 'svc-org' });
  orgGuid = org.body.guid;
  const space = await call('POST', '/v3/spaces', { name: 'dev', relationships: { organization: { data: { guid: orgGuid } } } });
  spaceGuid = space.body.guid;
  client = pushClient({ api, token, spaceGuid });
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await broker?.close();
});

describe('the cf CLI service commands against the real server and a real broker', () => {
  let appGuid: string;
  let instanceGuid: string;

  it('cf create-service-broker fixture broker-user broker-pass URL', async () => {
    const res = await call('POST', '/v3/service_brokers', {
      name: 'fixture',
      url: broker.url,
      authentication: { type: 'basic', credentials: { username: 'broker-user', password: 'broker-pass' } },
    });
    expect(res.status).toBe(202);
    expect((await pollJob(res.headers.get('location'))).state).toBe('COMPLETE');
  });

  it('cf enable-service-access fixture-db', async () => {
    const offering = (await call('GET', '/v3/service_offerings?names=fixture-db')).body.resources[0];
    const plans = await call('GET', `/v3/service_plans?service_offering_guids=${offering.guid}&per_page=5000`);
    for (const p of plans.body.resources) {
      const res = await call('PATCH', `/v3/service_plans/${p.guid}/visibility`, { type: 'public' });
      expect(res.status).toBe(200);
    }
  });

  it('cf marketplace', async () => {
    const res = await call('GET', `/v3/service_plans?available=true&fields[service_offering.service_broker]=name,guid&include=service_offering&per_page=5000&space_guids=${spaceGuid}`);
    expect(res.status).toBe(200);
    expect(res.body.resources.map((p: any) => p.name).sort()).toEqual(['async', 'async-fail', 'async-short', 'fail', 'reject', 'slow', 'small']);
    expect(res.body.included.service_offerings.map((o: any) => [o.name, o.description])).toEqual([['fixture-db', 'A database that is not one']]);
    expect(res.body.included.service_brokers).toEqual([{ name: 'fixture', guid: expect.any(String) }]);
  });

  it('cf create-service fixture-db small my-db -c {...} -t tag', async () => {
    const plans = await call('GET', '/v3/service_plans?names=small&service_offering_names=fixture-db');
    expect(plans.body.resources).toHaveLength(1);
    const res = await call('POST', '/v3/service_instances', {
      type: 'managed',
      name: 'my-db',
      relationships: { space: { data: { guid: spaceGuid } }, service_plan: { data: { guid: plans.body.resources[0].guid } } },
      parameters: { size: 'S' },
      tags: ['primary'],
    });
    expect(res.status).toBe(202);
    expect((await pollJob(res.headers.get('location'))).state).toBe('COMPLETE');
    const taken = await call('POST', '/v3/service_instances', {
      type: 'managed',
      name: 'my-db',
      relationships: { space: { data: { guid: spaceGuid } }, service_plan: { data: { guid: plans.body.resources[0].guid } } },
    });
    expect(taken.status).toBe(422);
    expect(taken.body.errors[0].detail).toBe('The service instance name is taken: my-db.');
  });

  it('cf create-user-provided-service my-ups -p {...}', async () => {
    const res = await call('POST', '/v3/service_instances', { type: 'user-provided', name: 'my-ups', relationships: { space: { data: { guid: spaceGuid } } }, credentials: { token: 'abc' } });
    expect(res.status).toBe(201);
  });

  it('cf push vcap', async () => {
    appGuid = await client.push('vcap', path.join(FIXTURES, 'vcap'));
    const body = await until('the app answers', async () => {
      const r = await client.viaRouter('vcap.apps.localhost');
      return r.status === 200 ? r.body : undefined;
    });
    expect(JSON.parse(body)).toEqual({});
  }, 120_000);

  it('cf bind-service vcap my-db / my-ups, then cf restart: the app sees VCAP_SERVICES', async () => {
    for (const name of ['my-db', 'my-ups']) {
      const lookup = await call('GET', `/v3/service_instances?names=${name}&page=1&per_page=1&space_guids=${spaceGuid}`);
      const inst = lookup.body.resources[0];
      if (name === 'my-db') instanceGuid = inst.guid;
      const apps = await call('GET', `/v3/apps?names=vcap&page=1&per_page=1&space_guids=${spaceGuid}`);
      const res = await call('POST', '/v3/service_credential_bindings', { type: 'app', relationships: { service_instance: { data: { guid: inst.guid } }, app: { data: { guid: apps.body.resources[0].guid } } } });
      expect([201, 202]).toContain(res.status);
      if (res.status === 202) expect((await pollJob(res.headers.get('location'))).state).toBe('COMPLETE');
    }
    // Not before a restart, as in CF.
    expect(JSON.parse((await client.viaRouter('vcap.apps.localhost')).body)).toEqual({});
    expect((await call('POST', `/v3/apps/${appGuid}/actions/restart`)).status).toBe(200);
    const seen = await until('the restarted app sees its bindings', async () => {
      const r = await client.viaRouter('vcap.apps.localhost');
      if (r.status !== 200) return undefined;
      const v = JSON.parse(r.body);
      return v && v['fixture-db'] ? v : undefined;
    }, 60_000);
    expect(seen['fixture-db'][0]).toMatchObject({ label: 'fixture-db', plan: 'small', name: 'my-db', tags: ['sql', 'fixture', 'primary'], credentials: { password: 'secret-pw' } });
    expect(seen['user-provided'][0]).toMatchObject({ name: 'my-ups', credentials: { token: 'abc' } });
  }, 120_000);

  it('cf env vcap', async () => {
    const res = await call('GET', `/v3/apps/${appGuid}/env`);
    expect(Object.keys(res.body.system_env_json.VCAP_SERVICES).sort()).toEqual(['fixture-db', 'user-provided']);
  });

  it('cf create-service-key my-db k1; cf service-key my-db k1', async () => {
    const res = await call('POST', '/v3/service_credential_bindings', { type: 'key', name: 'k1', relationships: { service_instance: { data: { guid: instanceGuid } } } });
    expect(res.status).toBe(202);
    expect((await pollJob(res.headers.get('location'))).state).toBe('COMPLETE');
    const key = await call('GET', `/v3/service_credential_bindings?service_instance_guids=${instanceGuid}&type=key&names=k1&per_page=1&page=1`);
    const details = await call('GET', `/v3/service_credential_bindings/${key.body.resources[0].guid}/details`);
    expect(details.body.credentials.password).toBe('secret-pw');
  });

  it('cf services', async () => {
    const res = await call(
      'GET',
      `/v3/service_instances?fields[service_plan.service_offering.service_broker]=guid,name&fields[service_plan.service_offering]=guid,name,relationships.service_broker&fields[service_plan]=guid,name,relationships.service_offering&order_by=name&per_page=5000&space_guids=${spaceGuid}`,
    );
    expect(res.body.resources.map((i: any) => i.name)).toEqual(['my-db', 'my-ups']);
    const guids = res.body.resources.map((i: any) => i.guid).join(',');
    const bindings = await call('GET', `/v3/service_credential_bindings?include=app&service_instance_guids=${guids}`);
    expect(bindings.body.included.apps.map((a: any) => a.name)).toEqual(['vcap']);
  });

  it('cf service my-db', async () => {
    const fields = [
      'fields[service_plan]=name,guid',
      'fields[service_plan.service_offering]=name,guid,description,tags,documentation_url',
      'fields[service_plan.service_offering.service_broker]=name,guid',
      'fields[space]=name,guid',
      'fields[space.organization]=name,guid',
    ].join('&');
    const res = await call('GET', `/v3/service_instances?names=my-db&space_guids=${spaceGuid}&per_page=1&page=1&${fields}`);
    expect(res.status).toBe(200);
    const inst = res.body.resources[0];
    expect(res.body.included.service_offerings[0]).toEqual({
      name: 'fixture-db',
      guid: expect.any(String),
      description: 'A database that is not one',
      tags: ['sql', 'fixture'],
      documentation_url: 'https://example.org/docs',
    });
    expect(res.body.included.spaces).toEqual([{ name: 'dev', guid: spaceGuid }]);
    expect(res.body.included.organizations).toEqual([{ name: 'svc-org', guid: orgGuid }]);
    expect((await call('GET', '/v3/feature_flags/service_instance_sharing')).body.enabled).toBe(false);
    const offering = await call('GET', `/v3/service_offerings/${res.body.included.service_offerings[0].guid}`);
    expect(offering.body.shareable).toBe(true);
    const shared = await call('GET', `/v3/service_instances/${inst.guid}/relationships/shared_spaces?fields[space]=guid,name,relationships.organization&fields[space.organization]=guid,name`);
    expect(shared.body.data).toEqual([]);
    expect((await call('GET', `/v3/service_instances/${inst.guid}/relationships/shared_spaces/usage_summary`)).body.usage_summary).toEqual([]);
    expect((await call('GET', `/v3/service_plans/${inst.relationships.service_plan.data.guid}`)).body.name).toBe('small');
    const bindings = await call('GET', `/v3/service_credential_bindings?include=app&service_instance_guids=${inst.guid}&type=app`);
    expect(bindings.body.included.apps.map((a: any) => a.name)).toEqual(['vcap']);
  });

  it('cf delete-service my-db -w', async () => {
    const lookup = await call('GET', `/v3/service_instances?names=my-db&page=1&per_page=1&space_guids=${spaceGuid}`);
    const res = await call('DELETE', `/v3/service_instances/${lookup.body.resources[0].guid}`);
    expect(res.status).toBe(202);
    expect((await pollJob(res.headers.get('location'))).state).toBe('COMPLETE');
    expect(broker.instances.has(instanceGuid)).toBe(false);
    expect((await call('GET', `/v3/service_instances?names=my-db&space_guids=${spaceGuid}`)).body.resources).toHaveLength(0);
  });
});

describe('an asynchronous provision across a Kiln restart', () => {
  it('keeps polling after SIGKILL and completes the operation and its job', async () => {
    broker.options.asyncPolls = 1_000_000;
    const plan = (await call('GET', '/v3/service_plans?names=async&service_offering_names=fixture-db')).body.resources[0];
    const res = await call('POST', '/v3/service_instances', {
      type: 'managed',
      name: 'slow-db',
      relationships: { space: { data: { guid: spaceGuid } }, service_plan: { data: { guid: plan.guid } } },
    });
    const location = res.headers.get('location');
    expect((await pollJob(location, ['POLLING'])).state).toBe('POLLING');
    const guid = (await call('GET', `/v3/service_instances?names=slow-db&space_guids=${spaceGuid}`)).body.resources[0].guid;
    expect(broker.requests.some((r) => r.path === `/v2/service_instances/${guid}/last_operation`)).toBe(true);

    await server.stop({ keepData: true, signal: 'SIGKILL' });
    broker.options.asyncPolls = 0;
    server = await startServerProcess({ dataDir: server.dataDir, env: ENV });
    api = server.url;
    token = (await cliLogin(api, 'admin', server.adminPassword)).access_token;
    const job = await pollJob(`${api}${new URL(location!).pathname}`);
    expect(job.state).toBe('COMPLETE');
    const inst = await call('GET', `/v3/service_instances/${guid}`);
    expect(inst.body.last_operation).toMatchObject({ type: 'create', state: 'succeeded' });
  }, 120_000);
});

