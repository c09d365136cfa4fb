import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routeMatcher } from '../../src/api/route-matcher.ts';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';
import { fill, kindOf, operations, type Operation } from './abuse/operations.ts';
import { Dice, prng, randomBody } from './abuse/random.ts';
import { send, type Body } from './abuse/requests.ts';
import { buildWorld, QUIET_CONTROLLERS, type World } from './abuse/world.ts';

/**
 * 200 random bodies for every POST and PATCH of openapi.json, two in three sent by an admin against tenant A's
 * resources and one in three by a user with every role in org B against B's: bodies that follow the schema with a twist, examples with one node replaced, any JSON at all, deeply
 * nested JSON, text that is almost JSON, random multipart forms for uploads and random YAML for manifests.
 * No answer may be a 5xx, every answer must be what openapi.json says (errors as CF error documents), and a
 * refused request (4xx) must leave the store as it found it: no partial writes.
 *
 * The run is reproducible: `KILN_ABUSE_SEED=<n>` replays every body (each operation draws from its own stream,
 * so one operation replays alone too); a failure prints the seed. `KILN_ABUSE_BODIES` changes the count.
 */
const SEED = process.env.KILN_ABUSE_SEED ? Number(process.env.KILN_ABUSE_SEED) : (Date.now() ^ (process.pid << 16)) >>> 0;
const PER_OPERATION = Number(process.env.KILN_ABUSE_BODIES ?? 200);

/**
 * Refusals that do change state, as Cloud Controller's do: bits that fail to process leave their package or
 * droplet FAILED (CC's upload job marks them so; Kiln processes in the request and answers 422).
 */
const STATE_CHANGING_REFUSALS: Record<string, string> = {
  uploadPackageBits: 'bits that cannot be processed leave the package FAILED, as CC does',
  uploadDroplet: 'bits that cannot be processed leave the droplet FAILED, as CC does',
};

/** Answers that differ from openapi.json on purpose (the house openapi check allows them with the same reason). */
const SPEC_DEVIATIONS: Record<string, string> = {
  'transferRouteOwnership 200': 'CONVENTIONS.md §7: upstream answers 200 {"status":"ok"} where its docs say 204',
};

let t: TestKiln;
let world: World;
let served: (method: string, path: string) => boolean;
const unserved: string[] = [];
let guids: string[];
let fingerprintSql: string;

const targets = operations.filter((o) => o.method === 'POST' || o.method === 'PATCH');

beforeAll(async () => {
  t = await createTestKiln({}, { disabledControllers: QUIET_CONTROLLERS });
  world = await buildWorld(t);
  guids = [...Object.values(world.a.guids), ...Object.values(world.b.guids)].filter((g): g is string => typeof g === 'string');
  fingerprintSql = await buildFingerprint();
  // A user's first request records them (CC's users row): a write of its own, not of whatever body comes first.
  await world.mallory.get('/v3/organizations');
  await StoreWatch.install();
  served = routeMatcher(t.kiln.app.routes);
}, 120_000);
afterAll(async () => {
  await t?.close();
  await world?.close();
});

/**
 * One query that changes whenever any row is written: per table the row count, and the summed length of every
 * column (text form), plus the latest `updated_at` and summed `generation` where a table has them. Cheap enough to
 * run after every request, unlike a full snapshot; a write that keeps every length, timestamp and generation
 * (none of Kiln's do) would slip through.
 */
async function buildFingerprint(): Promise<string> {
  const tables = (await t.kiln.store.db.introspection.getTables()).filter((tb) => !tb.name.startsWith('kysely_'));
  const parts = tables.map((tb) => {
    const q = (n: string) => `"${n.replace(/"/g, '""')}"`;
    const cols = tb.columns.map((c) => `coalesce(sum(length(cast(${q(c.name)} as text))), 0)`);
    const extra = [
      tb.columns.some((c) => c.name === 'updated_at') ? `coalesce(max(cast(updated_at as text)), '')` : `''`,
      tb.columns.some((c) => c.name === 'generation') ? `coalesce(sum(generation), 0)` : `0`,
    ];
    return `(select ${[`count(*)`, ...cols, ...extra].map((e) => `cast(${e} as text)`).join(" || ',' || ")} from ${q(tb.name)})`;
  });
  return `select ${parts.join(" || '|' || ")} as fp`;
}

async function fingerprint(): Promise<string> {
  const res = await sql.raw<{ fp: string }>(fingerprintSql).execute(t.kiln.store.db);
  return res.rows[0]!.fp;
}

/**
 * Tracks the store between requests. On SQLite, temporary triggers (they live in Kiln's one connection only, and
 * leave the schema alone) count every row written; a transaction that rolls back takes its counts with it, so
 * the counter moves only for writes that stayed — one tiny query per request. On PostgreSQL the database's
 * snapshot says whether anything ran, and the fingerprint, which costs as much as a request, decides.
 */
class StoreWatch {
  private mark = '';

  static async install(): Promise<void> {
    if (t.kiln.store.dialect !== 'sqlite') return;
    const db = t.kiln.store.db;
    await sql.raw('create temp table abuse_writes (n integer not null)').execute(db);
    await sql.raw('insert into abuse_writes (n) values (0)').execute(db);
    for (const tb of await db.introspection.getTables()) {
      if (tb.name.startsWith('kysely_')) continue;
      for (const op of ['insert', 'update', 'delete']) {
        const name = `abuse_${op}_${tb.name}`.replace(/[^a-z0-9_]/gi, '_');
        await sql.raw(`create temp trigger ${name} after ${op} on main."${tb.name}" begin update abuse_writes set n = n + 1; end`).execute(db);
      }
    }
  }

  private async now(): Promise<string> {
    // The job controller is the only one left running: let it finish what an accepted request queued, so its
    // writes are not taken for a later request's.
    await t.kiln.controllers.settle();
    if (t.kiln.store.dialect === 'sqlite') return String((await sql.raw<{ n: number }>('select n from abuse_writes').execute(t.kiln.store.db)).rows[0]!.n);
    return fingerprint();
  }

  async reset(): Promise<void> {
    this.mark = await this.now();
  }

  /** Whether anything was written since the last call (or reset). */
  async changed(): Promise<boolean> {
    const mark = await this.now();
    const changed = mark !== this.mark;
    this.mark = mark;
    return changed;
  }
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** The operation's path with tenant A's resources (an admin may touch them all). */
function urlOf(op: Operation, fresh: Record<string, string>, tenant: Record<string, string> = world.a.guids): string {
  return fill(op.template, ({ param, after }) => {
    if (param === 'type') return 'web';
    if (param === 'index') return '0';
    if (param === 'name') return after === 'features' ? 'ssh' : after === 'feature_flags' ? 'diego_docker' : 'running';
    if (after === 'buildpacks') return world.globals.buildpack;
    const kind = param === 'guid' || param === 'quota_guid' ? kindOf(after) : kindOf(param.replace(/_guid$/, ''));
    return fresh[kind] ?? tenant[kind] ?? '00000000-0000-4000-8000-000000000000';
  })!;
}

const describeBody = (b: Body) => {
  const s = b.kind === 'json' ? JSON.stringify(b.value) : b.kind === 'raw' ? `${b.contentType}: ${b.text}` : `multipart ${JSON.stringify(b.fields)}${b.file ? ` + ${b.file.length} bytes` : ''}`;
  return s.length > 300 ? `${s.slice(0, 300)}… (${s.length} chars)` : s;
};

let requests = 0;
const cpuAtStart = process.cpuUsage();
const started = Date.now();

describe('the store watch', () => {
  it('sees a write that stayed and not one that was rolled back', async () => {
    const watch = new StoreWatch();
    await watch.reset();
    expect(await watch.changed()).toBe(false);
    const app = world.a.guids.app!;
    const row = await t.kiln.store.db.selectFrom('apps').select('generation').where('guid', '=', app).executeTakeFirstOrThrow();
    await expect(
      t.kiln.store.write(async (tx) => {
        await tx.update('apps', app, { name: 'never' }, { expectedGeneration: row.generation });
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(await watch.changed()).toBe(false);
    expect((await t.admin.patch(`/v3/apps/${world.a.guids.app}`, { metadata: { labels: { watched: 'yes' } } })).status).toBe(200);
    expect(await watch.changed()).toBe(true);
  });
});

describe(`random bodies (KILN_ABUSE_SEED=${SEED})`, () => {
  it.each(targets.map((op) => [`${op.method} ${op.template}`, op] as const))('%s: no 5xx, answers as documented, no partial writes', async (_name, op) => {
    const d = new Dice(prng(SEED ^ hash(op.operationId)));
    const problems: string[] = [];
    const watch = new StoreWatch();
    await watch.reset();
    // An operation Kiln does not serve is refused by the router before its body is read: one body shows it.
    const count = served(op.method, urlOf(op, {})) ? PER_OPERATION : (unserved.push(op.operationId), 1);
    for (let i = 0; i < count; i++) {
      // Every third body comes from mallory (every role in org B, none elsewhere) against B's resources, so the
      // permission paths of a non-admin see the same garbage; the rest from an admin against A's.
      const asMallory = i % 3 === 2;
      const tenant = asMallory ? world.b.guids : world.a.guids;
      // An upload gets a target that still awaits its bits, or every body after the first would be refused unread.
      const fresh: Record<string, string> = {};
      if (op.operationId === 'uploadPackageBits' || op.operationId === 'uploadDroplet') {
        const kind = op.operationId === 'uploadDroplet' ? 'droplets' : 'packages';
        const made = await t.admin.post(`/v3/${kind}`, { ...(kind === 'packages' ? { type: 'bits' } : {}), relationships: { app: { data: { guid: tenant.app } } } });
        fresh[kind === 'packages' ? 'package' : 'droplet'] = made.body.guid;
        await watch.reset();
      }
      // A plan's visibility can only change for a plan of a platform broker (a space-scoped one's is refused).
      if (/\/visibility$/.test(op.template) && !asMallory) fresh.service_plan = world.globals.planOfA;
      const body = randomBody(d, op, guids);
      const url = urlOf(op, fresh, tenant);
      const reply = await send(t.kiln, asMallory ? world.mallory.token : t.admin.token, op.method, url, body);
      requests++;
      const changed = await watch.changed();
      const say = (p: string) =>
        problems.length < 5 && problems.push(`KILN_ABUSE_SEED=${SEED} body #${i}${asMallory ? ' (as mallory)' : ''}: ${p} — got ${reply.status} ${reply.text.slice(0, 300)} — sent ${describeBody(body)}`);
      if (reply.status >= 500) say('a 5xx');
      else if (reply.specProblems.length > 0 && !(`${op.operationId} ${reply.status}` in SPEC_DEVIATIONS)) say(`not as openapi.json says: ${reply.specProblems.slice(0, 3).join('; ')}`);
      if (reply.status >= 400 && changed && !(op.operationId in STATE_CHANGING_REFUSALS)) say('refused, yet something was written');
    }
    expect(problems, `reproduce with KILN_ABUSE_SEED=${SEED}`).toEqual([]);
  });

  it('reports what it sent', () => {
    const cpu = process.cpuUsage(cpuAtStart);
    console.log(
      `abuse random bodies: seed ${SEED}, ${targets.length} operations (${unserved.length} not served by Kiln: one body each), ${requests} requests in ${((Date.now() - started) / 1000).toFixed(1)} s wall, ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s CPU`,
    );
  });
});
