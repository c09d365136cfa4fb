import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routeMatcher } from '../../src/api/route-matcher.ts';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';
import { asBody, exampleBody, freshGuid, guidSlots, setAt } from './abuse/bodies.ts';
import { deref, fill, kindOf, operations, placeholders, spec, type Operation } from './abuse/operations.ts';
import { Dice, prng, randomBody } from './abuse/random.ts';
import { firstDifference, outcome, send, snapshot, type Body, type Reply } from './abuse/requests.ts';
import { buildWorld, QUIET_CONTROLLERS, type World } from './abuse/world.ts';

/**
 * Tenant isolation as a property of every operation in openapi.json (issue 8, "How it is checked").
 *
 * `mallory` holds every org and space role in org B and none in org A. For each operation of the document the
 * suite generates requests that name org A's resources, sends them as mallory, and asks:
 * - in the path (`GET/PATCH/DELETE/POST …/{A's guid}/…`): 404 CF-ResourceNotFound (10010), exactly what a guid
 *   that exists nowhere gets (CONVENTIONS.md §13.3: never reveal existence);
 * - in the body of a write (`relationships.space` = A's space, a destination's app = A's app, …) or as a second
 *   path guid beside one of B's: refused with 403/404/422 (CC's documented answer to an invisible reference is
 *   422, §7/§13.3), again exactly as a guid that exists nowhere;
 * - in a list's `*_guids` filter: nothing of A's in the answer;
 * and, for every request that is not a GET, that nothing Kiln holds changed (every row of every table and every
 * file in the data directory). No answer may be a 5xx or carry a name or guid of A's the caller did not send.
 *
 * Then every write to one of A's resources gets seeded random bodies too (abuse/random.ts), each answered exactly
 * as the same body sent to a made-up guid.
 *
 * Families that hold no tenant's resources are exempt from the 404 rule (listed below, with the reason); they are
 * still called, with A-related parameters where they take any, and must neither leak nor change anything.
 * Operations Kiln does not serve must answer 404 and are listed when the suite ends; once one is
 * served, its cases run like the others and need an org-A fixture in abuse/world.ts.
 *
 * Services: A's space-scoped broker (its offerings and plans are seen in A's space only), a managed, a
 * user-provided and a route service instance, an app binding, a key, a user-provided binding, a route binding and a
 * share; and a global broker whose plan is enabled for org A alone. Each service operation runs once per instance,
 * binding and plan of A's (`variantsOfA`).
 */
const GLOBAL_FAMILIES: Record<string, string> = {
  '': 'API roots: links only, the same for every caller',
  info: 'platform information, the same for every caller',
  stacks: 'stacks are global (every user reads them, admins write); /stacks/{guid}/apps is still checked for leaks',
  buildpacks: 'admin buildpacks are global (every user reads them, admins write)',
  feature_flags: 'platform feature flags (every user reads them, admins write)',
  environment_variable_groups: 'the running and staging groups are platform-wide (every user reads them, admins write)',
  resource_matches: 'answers which file fingerprints the blobstore holds; names no tenant resource',
  admin: 'platform administration (admins only)',
  organization_quotas:
    'org quotas are platform-wide definitions every user reads (CC); only the organizations each applies to are filtered, which the leak check covers',
  jobs: 'CONVENTIONS.md §10: any authenticated user may fetch any job by guid (no ownership check); a job names no tenant data',
};

/**
 * Writes that only admins may call (Appendix B: "A" alone): CC refuses a non-admin before it looks the resource
 * up, so the answer is 403 for A's resource and for one that exists nowhere alike, and says nothing about A.
 */
const ADMIN_ONLY: Record<string, string> = {
  updateIsolationSegment: 'Appendix B: PATCH /v3/isolation_segments/:guid is admin only',
  deleteIsolationSegment: 'Appendix B: DELETE /v3/isolation_segments/:guid is admin only',
  entitleOrganizationsForIsolationSegment: 'Appendix B: entitling organizations is admin only',
  revokeIsolationSegmentForOrganization: 'Appendix B: revoking an entitlement is admin only',
  updateSecurityGroup: 'Appendix B: PATCH /v3/security_groups/:guid is admin only',
  deleteSecurityGroup: 'Appendix B: DELETE /v3/security_groups/:guid is admin only',
  updateUser: 'Appendix B: PATCH /v3/users/:guid is admin only',
  deleteUser: 'Appendix B: DELETE /v3/users/:guid is admin only',
};

/**
 * Refusals whose detail follows CC's own wording, which tells a resource of another org apart from one that does
 * not exist: the status, title and code must still be the same, the detail may differ as CC's does.
 */
const DETAIL_AS_CC: Record<string, string> = {
  insertDestinationsForRoute: 'CC (RouteDestinationsController) answers `do not exist.` for an unknown app and `you do not have access.` for an app it cannot read',
  replaceDestinationsForRouteWithPatch: 'CC (RouteDestinationsController) answers `do not exist.` for an unknown app and `you do not have access.` for an app it cannot read',
  shareDomain: "CC answers `does not exist, or you do not have access to it` for an unknown org and `either does not exist, …` for an org it cannot read",
};

/**
 * `fields[…]` of the service lists (CONVENTIONS.md §4: every key CC accepts), so the parents they add are checked
 * for leaks too. An instance A shares into B's space comes with its own space and org: CC shows them (`cf service`
 * in the target space says where the instance comes from).
 */
const LIST_FIELDS: Record<string, string> = {
  listServiceInstances:
    'fields[space]=guid,name,relationships.organization&fields[space.organization]=guid,name&fields[service_plan]=guid,name,relationships.service_offering' +
    '&fields[service_plan.service_offering]=guid,name,description,documentation_url,tags,relationships.service_broker&fields[service_plan.service_offering.service_broker]=guid,name',
  listServiceOfferings: 'fields[service_broker]=guid,name',
  listServicePlans: 'fields[service_offering.service_broker]=guid,name',
};

/** The values of an operation's `include` parameter (all of them at once). */
function includeValues(op: Operation): string | undefined {
  const raw = (spec.paths[op.template] as Record<string, { parameters?: Array<Record<string, unknown>> }>)[op.method.toLowerCase()]?.parameters ?? [];
  const p = raw.map((x) => (x.$ref ? deref(x) : x)).find((x) => x.name === 'include' && x.in === 'query');
  const items = p ? (deref(p.schema) as { items?: { enum?: string[] } }).items : undefined;
  return items?.enum?.join(',');
}

/** Creates that also copy (`POST /v3/packages?source_guid=…`), with the kind they copy. */
const COPIES: Record<string, string> = { createPackage: 'package', createDroplet: 'droplet' };

/** Values for placeholders that are not guids of a tenant's resources. */
function namedValue(param: string, after: string, world: World): string | undefined {
  if (param === 'type') return 'web';
  if (param === 'index') return '0';
  if (param === 'name' && after === 'features') return 'ssh';
  if (param === 'name' && after === 'feature_flags') return 'diego_docker';
  if (param === 'name' && after === 'environment_variable_groups') return 'running';
  if (after === 'buildpacks') return world.globals.buildpack;
  return undefined;
}

/** The kind a guid placeholder names: `{guid}` after `apps` is an app; `{org_guid}` an org; `{space_guid}` a space. */
function placeholderKind(param: string, after: string): string {
  if (param === 'guid' || param === 'quota_guid') return kindOf(after);
  return kindOf(param.replace(/_guid$/, ''));
}

type Expect = 'hidden' | 'refused' | 'list' | 'global-read' | 'global-write' | 'not-served';

interface Case {
  name: string;
  op: Operation;
  expect: Expect;
  url: string;
  body?: Body;
  /** The same request with every guid of A's replaced by one that exists nowhere. */
  probeUrl: string;
  probeBody?: Body;
  /** A's guids and the made-up ones the probe has in their place. */
  probeMap: Map<string, string>;
  /** Guids and names of A's this answer may carry, as CC's does (with the reason). */
  allowed?: { guids: string[]; names: string[]; why: string };
}

/**
 * Whether a probe was answered as A's request: the same status, title and code, and the same error details once
 * the probe's made-up guids are read as the A guids they stand for (a detail that names the plan, or says more
 * than "could not be found", tells A's resource apart as surely as a status).
 */
function sameAnswer(reply: Reply, probe: Reply, map: Map<string, string>): boolean {
  if (outcome(reply) !== outcome(probe)) return false;
  const details = (r: Reply) => JSON.stringify(((r.body?.errors ?? []) as Array<{ detail?: string }>).map((e) => e.detail));
  let back = details(probe);
  for (const [a, fresh] of map) back = back.split(fresh).join(a);
  return back === details(reply);
}

/** Replaces each of A's guids in a string by a fresh one (same replacement for the same guid). */
function withoutA(text: string, world: World, map: Map<string, string>): string {
  let out = text;
  for (const g of world.secretsOfA) {
    if (!out.includes(g)) continue;
    if (!map.has(g)) map.set(g, freshGuid());
    out = out.split(g).join(map.get(g)!);
  }
  return out;
}

function probeOf(body: Body | undefined, world: World, map: Map<string, string>): Body | undefined {
  if (!body) return undefined;
  if (body.kind === 'json') return { kind: 'json', value: JSON.parse(withoutA(JSON.stringify(body.value), world, map)) };
  if (body.kind === 'raw') return { ...body, text: withoutA(body.text, world, map) };
  return { ...body, fields: JSON.parse(withoutA(JSON.stringify(body.fields), world, map)) };
}

const hasBody = (op: Operation) => op.method !== 'GET' && op.method !== 'DELETE';

/** Every case of one operation, against this world. */
function casesOf(op: Operation, world: World, served: (method: string, path: string) => boolean): Case[] {
  const a = world.a.guids;
  const b = world.b.guids;
  const global = op.family in GLOBAL_FAMILIES;
  const out: Case[] = [];
  const add = (name: string, expect: Expect, url: string, body?: Body) => {
    const map = new Map<string, string>();
    const probeBody = probeOf(body, world, map);
    out.push({ name, op, expect, url, ...(body ? { body } : {}), probeUrl: withoutA(url, world, map), ...(probeBody ? { probeBody } : {}), probeMap: map });
  };
  // Path guids from `first` for the first placeholder and `rest` for the others.
  const urlWith = (first: Record<string, string>, rest: Record<string, string>) => {
    let i = 0;
    return fill(op.template, ({ param, after }) => {
      const own = namedValue(param, after, world);
      const from = i++ === 0 ? first : rest;
      return own ?? from[placeholderKind(param, after)];
    });
  };
  const example = exampleBody(op);
  const slots = hasBody(op) ? guidSlots(example, op.template) : [];
  // Users are not a tenant's: an org manager may give a role to any user by guid (CC's roles rule), so a body's
  // user slot names mallory's own org-B colleague, never a secret of A's.
  const bodyWith = (pick: (slotIndex: number, kind: string) => Record<string, string>) => {
    let value = example;
    slots.forEach((s, i) => {
      const guid = s.kind === 'user' ? b.user : pick(i, s.kind)[s.kind];
      value = setAt(value, s.path, guid ?? freshGuid());
    });
    return hasBody(op) ? asBody(op, value) : undefined;
  };
  const params = placeholders(op.template);

  // A query parameter an operation cannot do without (CC validates it before it looks anything up).
  const query = op.query.includes('unmapped') ? '?unmapped=true' : '';
  const filled = urlWith(a, a);
  const anywhere = fill(op.template, ({ param, after }) => namedValue(param, after, world) ?? freshGuid())!;
  if (!served(op.method, anywhere)) {
    add('not served', 'not-served', anywhere + query, bodyWith(() => a));
    return out;
  }
  if (filled === undefined) throw new Error(`${op.method} ${op.template}: the world has no org-A resource for one of its placeholders; add one in abuse/world.ts`);
  const url = filled + query;
  if (global) {
    add('A in every guid', op.method === 'GET' ? 'global-read' : 'global-write', url, bodyWith(() => a));
    return out;
  }
  if (params.length === 0 && op.method === 'GET') {
    add('list', 'list', url);
    for (const q of op.query.filter((n) => n.endsWith('guids'))) {
      const kind = q === 'guids' ? kindOf(op.family) : q === 'target_guids' ? 'app' : kindOf(`${q.replace(/_guids$/, '')}s`);
      add(`list ?${q}= A's ${kind}`, 'list', `${url}?${q}=${a[kind] ?? a.app}`);
    }
    const include = includeValues(op);
    if (include) add(`list ?include=${include}`, 'list', `${url}?include=${include}`);
    if (LIST_FIELDS[op.operationId]) {
      add('list with fields', 'list', `${url}?${LIST_FIELDS[op.operationId]}`);
      out[out.length - 1]!.allowed = {
        guids: [a.org!],
        names: ['tenant-a-org', 'tenant-a-shared-space'],
        why: "an instance shared into B's space shows its own space and org, as CC's fields do",
      };
    }
    return out;
  }
  if (params.length === 0 && op.operationId in COPIES) {
    // The copy form of the create (`?source_guid=`, not a declared parameter of openapi.json).
    const kind = COPIES[op.operationId]!;
    const into = (app: string) => asBody(op, { relationships: { app: { data: { guid: app } } } });
    add(`copy A's ${kind} into B's app`, 'refused', `${url}?source_guid=${a[kind]}`, into(b.app!));
    add(`copy B's ${kind} into A's app`, 'refused', `${url}?source_guid=${b[kind]}`, into(a.app!));
  }
  if (params.length === 0 && !slots.some((s) => s.kind !== 'user')) {
    // A write that names nothing of anyone's (a purge of every usage event, a platform-wide create): as mallory it
    // must change nothing, A's included.
    add('names nothing', 'global-write', url, bodyWith(() => a));
    return out;
  }
  if (params.length === 0) {
    // A create: each guid slot of the body names A's resource in turn, the others B's.
    slots.forEach((s, i) => {
      if (s.kind === 'user') return;
      add(`body ${s.path.join('.')} = A's ${s.kind}`, 'refused', url, bodyWith((j) => (j === i ? a : b)));
    });
    return out;
  }
  add('A in the path', 'hidden', url, bodyWith(() => a));
  if (params.slice(1).some((p) => namedValue(p.param, p.after, world) === undefined)) {
    const mixed = urlWith(b, a);
    if (mixed) add("B's first guid, A's after it", 'refused', mixed + query, bodyWith(() => b));
  }
  const own0 = urlWith(b, b);
  const own = own0 === undefined ? undefined : own0 + query;
  if (own) {
    slots.forEach((s, i) => {
      if (s.kind === 'user') return;
      add(`B in the path, body ${s.path.join('.')} = A's ${s.kind}`, 'refused', own, bodyWith((j) => (j === i ? a : b)));
    });
  }
  return out;
}

/** Random bodies per write to one of A's resources (the seed is shared with abuse-random-bodies.test.ts). */
const RANDOM_PER_WRITE = 10;
const SEED = process.env.KILN_ABUSE_SEED ? Number(process.env.KILN_ABUSE_SEED) : (Date.now() ^ (process.pid << 16)) >>> 0;

let t: TestKiln;
let world: World;
let served: (method: string, path: string) => boolean;
const tally = { cases: 0, requests: 0, byExpect: {} as Record<string, number> };

beforeAll(async () => {
  t = await createTestKiln({}, { disabledControllers: QUIET_CONTROLLERS });
  world = await buildWorld(t);
  served = routeMatcher(t.kiln.app.routes);
}, 120_000);
afterAll(async () => {
  await t?.close();
  await world?.close();
});

/** What is wrong with one case's answers (empty when it held). */
async function check(c: Case): Promise<string[]> {
  const token = world.mallory.token;
  const write = c.op.method !== 'GET';
  const before = write ? await snapshot(t.kiln) : '';
  let reply = await send(t.kiln, token, c.op.method, c.url, c.body);
  let probe = c.expect === 'hidden' || c.expect === 'refused' ? await send(t.kiln, token, c.op.method, c.probeUrl, c.probeBody) : undefined;
  tally.requests += probe ? 2 : 1;
  if (c.expect === 'hidden' && c.body && reply.status === 422 && probe && outcome(probe) === outcome(reply)) {
    // The documented example did not pass validation, which CC runs before any lookup (so it says nothing about
    // A); an empty body reaches the lookup in the operations where the example is stale.
    const empty = asBody(c.op, {});
    reply = await send(t.kiln, token, c.op.method, c.url, empty);
    probe = await send(t.kiln, token, c.op.method, c.probeUrl, empty);
    tally.requests += 2;
  }
  const problems: string[] = [];
  const say = (p: string) => problems.push(`${c.op.method} ${c.url} [${c.name}]: ${p} — got ${outcome(reply)} ${reply.text.slice(0, 200)}`);
  if (reply.status >= 500) say('a 5xx');
  if (reply.specProblems.length > 0) say(`not as openapi.json says: ${reply.specProblems.join('; ')}`);
  const sent = `${c.url} ${JSON.stringify(c.body ?? '')}`;
  const leaked = world.secretsOfA.filter((g) => reply.text.includes(g) && !sent.includes(g) && !c.allowed?.guids.includes(g));
  if (leaked.length > 0) say(`leaks A's guids ${leaked.join(', ')}`);
  if ((c.allowed?.names ?? []).reduce((text, n) => text.split(n).join(''), reply.text).includes('tenant-a')) say("leaks a name of A's");
  const same = (r: Reply) => (c.op.operationId in DETAIL_AS_CC ? outcome(r) === outcome(reply) : sameAnswer(reply, r, c.probeMap));
  switch (c.expect) {
    case 'hidden':
      if (ADMIN_ONLY[c.op.operationId] && reply.status === 403) {
        if (probe && !same(probe)) say(`a guid that exists nowhere gets ${outcome(probe)} ${probe.text.slice(0, 200)}`);
      } else if (reply.status !== 404 || reply.body?.errors?.[0]?.code !== 10010) say('expected 404 CF-ResourceNotFound (10010)');
      else if (probe && !same(probe)) say(`a guid that exists nowhere gets ${outcome(probe)} ${probe.text.slice(0, 200)}`);
      break;
    case 'refused':
      if (![403, 404, 422].includes(reply.status)) say('expected 403, 404 or 422');
      else if (probe && !same(probe)) say(`a guid that exists nowhere gets ${outcome(probe)} ${probe.text.slice(0, 200)}: the answer tells A's resources apart`);
      break;
    case 'list':
      if (reply.status !== 200 && reply.status !== 400) say('expected 200 (or 400 for a filter Kiln refuses)');
      break;
    case 'global-write':
      // Whether it answers 2xx (resource_matches is a query sent as POST) or 403, the snapshot below decides.
      break;
    case 'not-served':
      if (reply.status !== 404) say('expected 404 for an operation Kiln does not serve');
      break;
    case 'global-read':
      break;
  }
  if (write) {
    const after = await snapshot(t.kiln);
    if (after !== before) say(`changed state: ${firstDifference(before, after)}`);
  }
  tally.cases++;
  tally.byExpect[c.expect] = (tally.byExpect[c.expect] ?? 0) + 1;
  return problems;
}

const families = [...new Set(operations.map((o) => o.family))].sort();

/** The world, then the world with each of `variantsOfA` in A's place. */
const worldsOfA = (): World[] => [world, ...world.variantsOfA.map((v) => ({ ...world, a: { guids: { ...world.a.guids, ...v } } }))];

describe('a user with roles only in org B, against org A', () => {
  it.each(families)('gets nothing of org A through any %s operation, and changes nothing', async (family) => {
    const problems: string[] = [];
    for (const op of operations.filter((o) => o.family === family)) {
      // A's other instances, bindings and plans of the same kinds (user-provided, key, the global broker's plan
      // enabled for org A only) go through the same cases; a case no variant changes runs once.
      const seen = new Set<string>();
      for (const w of worldsOfA()) {
        for (const c of casesOf(op, w, served)) {
          const key = `${c.op.method} ${c.url} ${JSON.stringify(c.body ?? '')}`;
          if (seen.has(key)) continue;
          seen.add(key);
          problems.push(...(await check(c)));
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it(`answers random bodies sent to org A's resources like bodies sent to guids that exist nowhere (KILN_ABUSE_SEED=${SEED})`, async () => {
    // The documented body above reaches the lookup; random ones try the validation that may run before or after
    // it. Either order is fine as long as A's guid and a made-up one get the same answer.
    const d = new Dice(prng(SEED));
    const problems: string[] = [];
    const pool = [...world.secretsOfA, ...Object.values(world.b.guids).filter((g): g is string => typeof g === 'string')];
    for (const op of operations.filter(hasBody)) {
      const urls = new Set<string>();
      const hidden = worldsOfA()
        .flatMap((w) => casesOf(op, w, served))
        .filter((c) => c.expect === 'hidden' && !urls.has(c.url) && urls.add(c.url));
      for (const c of hidden) {
        const before = await snapshot(t.kiln);
        for (let i = 0; i < RANDOM_PER_WRITE; i++) {
          const body = randomBody(d, op, pool);
          const map = new Map<string, string>();
          const reply = await send(t.kiln, world.mallory.token, op.method, c.url, body);
          const probe = await send(t.kiln, world.mallory.token, op.method, withoutA(c.url, world, map), probeOf(body, world, map));
          tally.requests += 2;
          const say = (p: string) => problems.length < 20 && problems.push(`KILN_ABUSE_SEED=${SEED} ${op.method} ${c.url} body #${i}: ${p} — got ${outcome(reply)} ${reply.text.slice(0, 200)}`);
          if (reply.status >= 500) say('a 5xx');
          else if (reply.status < 400) say('accepted a write to a resource of another org');
          else if (op.operationId in DETAIL_AS_CC ? outcome(reply) !== outcome(probe) : !sameAnswer(reply, probe, map)) say(`a guid that exists nowhere gets ${outcome(probe)} ${probe.text.slice(0, 200)}`);
          const sent = `${c.url} ${JSON.stringify(body)}`;
          if (world.secretsOfA.some((g) => reply.text.includes(g) && !sent.includes(g)) || reply.text.includes('tenant-a')) say("leaks A's guids or names");
        }
        const after = await snapshot(t.kiln);
        if (after !== before) problems.push(`${op.method} ${c.url}: random bodies changed state: ${firstDifference(before, after)}`);
      }
    }
    expect(problems, `reproduce with KILN_ABUSE_SEED=${SEED}`).toEqual([]);
  });

  it('sees of what A shares with B only what CC shows a user of the space it is shared into', async () => {
    const { instance, plan } = world.sharedWithB;
    const token = world.mallory.token;
    const problems: string[] = [];
    const ghost = freshGuid();
    const leaks = (r: Reply) => world.secretsOfA.filter((g) => r.text.includes(g));
    const read = async (url: string, expect: number | 'as-ghost') => {
      const reply = await send(t.kiln, token, 'GET', url);
      tally.requests++;
      const say = (p: string) => problems.push(`GET ${url}: ${p} — got ${outcome(reply)} ${reply.text.slice(0, 200)}`);
      if (reply.specProblems.length > 0) say(`not as openapi.json says: ${reply.specProblems.join('; ')}`);
      if (leaks(reply).length > 0) say(`leaks A's guids ${leaks(reply).join(', ')}`);
      if (expect === 'as-ghost') {
        const probe = await send(t.kiln, token, 'GET', url.replace(instance, ghost));
        tally.requests++;
        if (reply.status !== 404 || !sameAnswer(reply, probe, new Map([[instance, ghost]]))) say(`expected what a made-up guid gets: ${outcome(probe)}`);
      } else if (reply.status !== expect) say(`expected ${expect}`);
      return reply;
    };
    // The instance itself is B's to see, in its space and by guid.
    const listed = await read(`/v3/service_instances?space_guids=${world.b.guids.space}`, 200);
    if (!listed.body?.resources?.some((r: { guid: string }) => r.guid === instance)) problems.push('the instance shared into B is not listed in B');
    await read(`/v3/service_instances/${instance}`, 200);
    await read(`/v3/service_plans/${plan}`, 200);
    // The plan's visibility names only the orgs the caller can see.
    const visibility = await read(`/v3/service_plans/${plan}/visibility`, 200);
    if (JSON.stringify(visibility.body?.organizations?.map((o: { guid: string }) => o.guid)) !== JSON.stringify([world.b.guids.org])) problems.push(`visibility lists ${visibility.text}`);
    // The spaces it is shared into, and how many apps use it there, are read from its own space only (CC:
    // relationships_shared_spaces and shared_spaces_usage_summary ask can_read_from_space? of the source space).
    await read(`/v3/service_instances/${instance}/relationships/shared_spaces`, 'as-ghost');
    await read(`/v3/service_instances/${instance}/relationships/shared_spaces/usage_summary`, 'as-ghost');
    // A's binding of A's app to it is A's.
    await read(`/v3/service_credential_bindings?service_instance_guids=${instance}`, 200);
    await read(`/v3/service_credential_bindings/${world.sharedWithB.binding}`, 404);
    // Writes to it from the space it is shared into are refused and change nothing.
    const before = await snapshot(t.kiln);
    const writes: Array<[string, string, Body?]> = [
      ['PATCH', `/v3/service_instances/${instance}`, { kind: 'json', value: { name: 'taken-over', tags: ['x'] } }],
      ['DELETE', `/v3/service_instances/${instance}`],
      ['POST', `/v3/service_instances/${instance}/relationships/shared_spaces`, { kind: 'json', value: { data: [{ guid: world.b.guids.space }] } }],
      ['DELETE', `/v3/service_instances/${instance}/relationships/shared_spaces/${world.b.guids.space}`],
      ['POST', '/v3/service_credential_bindings', { kind: 'json', value: { type: 'key', name: 'k', relationships: { service_instance: { data: { guid: instance } } } } }],
      // The plan and offering are the platform's: seeing them is no licence to change them (CC: admins, or
      // developers of a space-scoped broker's space).
      ['PATCH', `/v3/service_plans/${plan}`, { kind: 'json', value: { metadata: { labels: { owner: 'mallory' } } } }],
      ['DELETE', `/v3/service_plans/${plan}`],
      ['PATCH', `/v3/service_offerings/${world.sharedWithB.offering}`, { kind: 'json', value: { metadata: { labels: { owner: 'mallory' } } } }],
      ['DELETE', `/v3/service_offerings/${world.sharedWithB.offering}?purge=true`],
      ['POST', `/v3/service_plans/${plan}/visibility`, { kind: 'json', value: { type: 'public' } }],
      ['DELETE', `/v3/service_plans/${plan}/visibility/${world.b.guids.org}`],
    ];
    for (const [method, url, body] of writes) {
      const reply = await send(t.kiln, token, method, url, body);
      tally.requests++;
      if (reply.status < 400 || reply.status >= 500) problems.push(`${method} ${url}: expected a refusal — got ${outcome(reply)} ${reply.text.slice(0, 200)}`);
      if (leaks(reply).length > 0) problems.push(`${method} ${url}: leaks A's guids ${leaks(reply).join(', ')}`);
    }
    const after = await snapshot(t.kiln);
    if (after !== before) problems.push(`changed state: ${firstDifference(before, after)}`);
    expect(problems).toEqual([]);
  });

  it('covered every operation of openapi.json', () => {
    // Printed for the record (the report quotes these numbers): how many cases, and of which kind.
    const notServed = operations.filter((op) => casesOf(op, world, served)[0]?.expect === 'not-served').map((op) => `${op.method} ${op.template}`);
    console.log(
      `abuse cross-tenant: ${operations.length} operations, ${tally.cases} cases, ${tally.requests} requests`,
      JSON.stringify(tally.byExpect),
      `\nexempt families: ${Object.entries(GLOBAL_FAMILIES).map(([f, why]) => `${f || '(root)'}: ${why}`).join('; ')}`,
      `\ndetails as CC words them: ${Object.entries(DETAIL_AS_CC).map(([op, why]) => `${op}: ${why}`).join('; ')}`,
      `\nnot served by Kiln (${notServed.length}): ${notServed.join(', ')}`,
    );
    expect(tally.cases).toBeGreaterThanOrEqual(operations.length);
  });
});
