import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';

/**
 * No query value produces a 500. Every list endpoint is asked (with `?bogus=1`) which parameters it takes —
 * the 400 names them — and each of those is then sent the values an attacker would try: huge, negative,
 * fractional and non-numeric numbers, repeats, bracketed names, unicode, NUL bytes, very long strings, broken
 * timestamps, order_by and label_selector garbage.
 */
let t: TestKiln;
let appGuid: string;
let spaceGuid: string;
let orgGuid: string;

beforeAll(async () => {
  t = await createTestKiln();
  const org = await t.org('fuzz-org');
  orgGuid = org.guid;
  const space = await t.space('fuzz-space', org.guid);
  spaceGuid = space.guid;
  const app = await t.admin.post('/v3/apps', { name: 'fuzz-app', relationships: { space: { data: { guid: space.guid } } }, metadata: { labels: { env: 'prod' } } });
  appGuid = app.body.guid;
});

afterAll(async () => {
  await t?.close();
});

const LISTS = () => [
  '/v3/apps',
  '/v3/organizations',
  '/v3/spaces',
  '/v3/domains',
  '/v3/routes',
  '/v3/packages',
  '/v3/droplets',
  '/v3/builds',
  '/v3/processes',
  '/v3/tasks',
  '/v3/deployments',
  '/v3/roles',
  '/v3/users',
  '/v3/stacks',
  '/v3/buildpacks',
  '/v3/feature_flags',
  '/v3/isolation_segments',
  '/v3/organization_quotas',
  '/v3/space_quotas',
  '/v3/security_groups',
  '/v3/audit_events',
  `/v3/apps/${appGuid}/processes`,
  `/v3/apps/${appGuid}/routes`,
  `/v3/apps/${appGuid}/packages`,
  `/v3/apps/${appGuid}/droplets`,
  `/v3/apps/${appGuid}/builds`,
  `/v3/apps/${appGuid}/tasks`,
  `/v3/apps/${appGuid}/revisions`,
  `/v3/apps/${appGuid}/sidecars`,
  `/v3/organizations/${orgGuid}/domains`,
];

const NUMBERS = ['0', '-1', '1.5', '1e3', 'NaN', 'Infinity', '0x10', '99999999999999999999999', '9007199254740993', '4611686018427387904', '', ' ', '١٢'];
const STRINGS = [
  '',
  ',',
  ',,a,,',
  '%00',
  '\u0000',
  '💥',
  'é,ü,日本',
  "'; drop table apps; --",
  'x'.repeat(10_000),
  Array.from({ length: 2000 }, (_, i) => `g${i}`).join(','),
  '-',
  '+',
  '--name',
  '!',
  '!!a',
  'a in (',
  'a in ()',
  'a notin (b,',
  'a==b',
  'a=b=c',
  'env=prod,!',
  '=',
  'a!=',
  `${'k'.repeat(300)}=v`,
  '2020-02-30T00:00:00Z',
  '9999-99-99T99:99:99Z',
  '2020-01-01T00:00:00+01:00',
  '1577836800',
];

const enc = (v: string) => encodeURIComponent(v);

async function validParams(list: string): Promise<string[]> {
  const res = await t.admin.get(`${list}?bogus=1`);
  // Security groups answer unknown parameters with CC's 422; every other list with 400.
  expect([400, 422], `${list}: ${res.text.slice(0, 200)}`).toContain(res.status);
  const detail = res.body.errors[0].detail as string;
  return [...detail.slice(detail.indexOf('Valid parameters are:')).matchAll(/'([^']+)'/g)].map((m) => m[1]!);
}

describe('list query parameters', () => {
  it('bounds page × per_page to what the database can offset', async () => {
    const far = await t.admin.get('/v3/apps?page=9007199254740991&per_page=2');
    expect(far.status).toBe(400);
    expect(far.body.errors[0]).toMatchObject({ title: 'CF-BadQueryParameter', code: 10005 });
    expect(far.body.errors[0].detail).toContain('page × per_page must be at most 9007199254740991');
    const huge = await t.admin.get('/v3/apps?page=99999999999999999999999');
    expect(huge.status).toBe(400);
    const edge = await t.admin.get('/v3/apps?page=4503599627370495&per_page=2');
    expect(edge.status).toBe(200);
    expect(edge.body.resources).toEqual([]);
    expect((await t.admin.get('/v3/apps?per_page=5001')).body.errors[0].detail).toBe('The query parameter is invalid: Per page must be between 1 and 5000');
    expect((await t.admin.get('/v3/apps?page=0')).body.errors[0].detail).toBe('The query parameter is invalid: Page must be a positive integer');
  });

  it('refuses NUL characters in paths, queries and bodies, which PostgreSQL cannot compare', async () => {
    expect((await t.admin.get('/v3/apps/%00')).body.errors[0]).toMatchObject({ title: 'CF-NotFound', code: 10000 });
    const query = await t.admin.get('/v3/apps?names=a%00b');
    expect(query.status).toBe(400);
    expect(query.body.errors[0]).toMatchObject({ title: 'CF-BadQueryParameter', detail: 'The query parameter is invalid: Query parameters must not contain NUL characters' });
    const body = await t.admin.post('/v3/organizations', { name: 'nul\u0000org' });
    expect(body.status).toBe(400);
    expect(body.body.errors[0]).toMatchObject({ title: 'CF-MessageParseError', code: 1001 });
    const nested = await t.admin.post('/v3/organizations', { name: 'ok', metadata: { labels: { 'a\u0000': 'b' } } });
    expect(nested.status).toBe(400);
    const names = (await t.kiln.store.db.selectFrom('organizations').select('name').execute()).map((o) => o.name);
    expect(names.filter((n) => n === 'ok' || n.startsWith('nul'))).toEqual([]);
  });

  it('answers every list parameter of every list endpoint with something other than a 5xx', async () => {
    const failures: string[] = [];
    for (const list of LISTS()) {
      const params = await validParams(list);
      expect(params, list).toContain('per_page');
      const queries: string[] = [];
      for (const p of params) {
        const values = p === 'page' || p === 'per_page' ? [...NUMBERS, '💥', 'x'.repeat(500)] : STRINGS;
        for (const v of values) queries.push(`${p}=${enc(v)}`);
        queries.push(`${p}=1&${p}=2`, `${p}[]=1`, `${p}[gt]=1`, `${p}[lt]=${enc('2020-01-01T00:00:00Z')}`);
      }
      queries.push('created_ats[gt]=garbage', 'updated_ats[lte]=2020-13-01T00:00:00Z', 'created_ats[]=', 'order_by=-updated_at&order_by=name', `${'q'.repeat(2000)}=1`);
      for (const q of queries) {
        const url = `${list}?${q}`;
        const res = await t.admin.get(url);
        if (res.status >= 500) failures.push(`${url.slice(0, 200)} → ${res.status} ${res.text.slice(0, 200)}`);
      }
    }
    expect(failures).toEqual([]);
  }, 240_000);

  it('answers SCIM user lists and log-cache reads with something other than a 5xx for any parameter value', async () => {
    const failures: string[] = [];
    const targets: Array<[string, string[]]> = [
      ['/Users', ['filter', 'startIndex', 'count', 'sortBy', 'attributes']],
      [`/api/v1/read/${appGuid}`, ['start_time', 'end_time', 'limit', 'envelope_types', 'descending', 'name_filter']],
    ];
    const filters = ['userName eq "a"', 'userName eq', '(((', 'userName co "', 'id pr and', 'x'.repeat(5000), 'userName sw "a" or '.repeat(500)];
    for (const [base, params] of targets) {
      for (const p of params) {
        for (const v of [...NUMBERS, ...STRINGS, ...filters]) {
          const url = `${base}?${p}=${enc(v)}`;
          const res = await t.kiln.app.request(`http://kiln.test${url}`, { headers: { authorization: `bearer ${t.admin.token}` } });
          if (res.status >= 500) failures.push(`${url.slice(0, 200)} → ${res.status} ${(await res.text()).slice(0, 200)}`);
        }
      }
    }
    expect(failures).toEqual([]);
  }, 120_000);
});
