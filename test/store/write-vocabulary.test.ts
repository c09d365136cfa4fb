import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KilnError } from '../../src/domain/errors.ts';
import { newGuid, type Store, type WriteTx } from '../../src/store/store.ts';
import { openTestStore, ORG_DEFAULTS, SPACE_DEFAULTS } from './db.ts';

let store: Store;
let close: () => Promise<void>;

beforeEach(async () => {
  ({ store, close } = await openTestStore());
});
afterEach(async () => {
  await close();
});

const orgRow = (guid: string) => store.db.selectFrom('organizations').selectAll().where('guid', '=', guid).executeTakeFirstOrThrow();
const feed = async () => (await store.changesSince(0)).map((c) => [c.kind, c.guid, c.op]);
const insertOrg = (tx: WriteTx, name: string) => tx.insert('organizations', { ...ORG_DEFAULTS, name });

/** Runs `fn` in a write of its own and returns the write's timestamp with the value. */
async function timed<T>(fn: (tx: WriteTx) => Promise<T>): Promise<{ now: string; value: T }> {
  let now = '';
  const value = await store.write(async (tx) => {
    now = tx.now;
    return fn(tx);
  });
  return { now, value };
}

describe('tx.insert', () => {
  it('makes a guid, stamps created_at and updated_at with the write time, starts at generation 1 and records a create', async () => {
    const { now, value: guid } = await timed((tx) => insertOrg(tx, 'o'));
    expect(guid).toMatch(/^[0-9a-f-]{36}$/);
    expect(await orgRow(guid)).toMatchObject({ name: 'o', created_at: now, updated_at: now, generation: 1 });
    expect(await feed()).toEqual([['organizations', guid, 'create']]);
  });

  it('keeps a guid the caller chose', async () => {
    const guid = newGuid();
    expect(await store.write((tx) => tx.insert('organizations', { ...ORG_DEFAULTS, guid, name: 'o' }))).toBe(guid);
    expect((await orgRow(guid)).name).toBe('o');
  });

  it('insertIfAbsent leaves an existing row alone and records nothing for it', async () => {
    const guid = newGuid();
    const first = await store.write((tx) => tx.insertIfAbsent('organizations', { ...ORG_DEFAULTS, guid, name: 'first' }));
    const second = await store.write((tx) => tx.insertIfAbsent('organizations', { ...ORG_DEFAULTS, guid, name: 'second' }));
    expect([first, second]).toEqual([guid, undefined]);
    expect((await orgRow(guid)).name).toBe('first');
    expect(await feed()).toEqual([['organizations', guid, 'create']]);
  });

  it('insertIfAbsent can judge by another unique column', async () => {
    const stack = { description: null, build_rootfs_image: null, run_rootfs_image: null, is_default: 0 };
    const first = await store.write((tx) => tx.insertIfAbsent('stacks', { ...stack, name: 's' }, ['name']));
    const again = await store.write((tx) => tx.insertIfAbsent('stacks', { ...stack, name: 's' }, ['name']));
    expect(first).toBeDefined();
    expect(again).toBeUndefined();
    expect(await feed()).toEqual([['stacks', first, 'create']]);
  });
});

describe('tx.update (desired state)', () => {
  it('applies the patch, bumps generation, stamps updated_at and records an update', async () => {
    const { now: created, value: guid } = await timed((tx) => insertOrg(tx, 'o'));
    const { now, value } = await timed((tx) => tx.update('organizations', guid, { name: 'renamed' }));
    expect(value).toBe(true);
    expect(await orgRow(guid)).toMatchObject({ name: 'renamed', generation: 2, created_at: created, updated_at: now });
    expect((await feed()).at(-1)).toEqual(['organizations', guid, 'update']);
  });

  it('returns false and records nothing for a missing row or one its `where` excludes', async () => {
    const guid = await store.write((tx) => insertOrg(tx, 'o'));
    const results = await store.write(async (tx) => [
      await tx.update('organizations', newGuid(), { name: 'x' }),
      await tx.update('organizations', guid, { name: 'x' }, { where: (eb) => eb('status', '=', 'deleting') }),
    ]);
    expect(results).toEqual([false, false]);
    expect(await orgRow(guid)).toMatchObject({ name: 'o', generation: 1 });
    expect(await feed()).toHaveLength(1);
  });

  it('with a stale expected generation is a CF 422 and rolls the write back', async () => {
    const guid = await store.write((tx) => insertOrg(tx, 'o'));
    await store.write((tx) => tx.update('organizations', guid, { name: 'first' }, { expectedGeneration: 1 }));
    const err = await store.write((tx) => tx.update('organizations', guid, { name: 'second' }, { expectedGeneration: 1 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KilnError);
    expect(err).toMatchObject({ status: 422, errorName: 'UnprocessableEntity', detail: expect.stringMatching(/organization was modified by another request/) });
    expect(await orgRow(guid)).toMatchObject({ name: 'first', generation: 2 });
  });

  it('updateWhere updates every matching row and returns their guids, each with its change entry', async () => {
    const [a, b, c] = await store.write(async (tx) => [await insertOrg(tx, 'a'), await insertOrg(tx, 'b'), await insertOrg(tx, 'c')]);
    const before = await store.latestRevision();
    const updated = await store.write((tx) => tx.updateWhere('organizations', (eb) => eb('name', 'in', ['a', 'b']), { suspended: 1 }));
    expect(updated.sort()).toEqual([a, b].sort());
    for (const g of [a!, b!]) expect(await orgRow(g)).toMatchObject({ suspended: 1, generation: 2 });
    expect(await orgRow(c!)).toMatchObject({ suspended: 0, generation: 1 });
    const entries = (await store.changesSince(before)).map((e) => [e.guid, e.op]);
    expect(entries.sort()).toEqual([[a, 'update'], [b, 'update']].sort());
  });
});

describe('tx.updateStatus (observed state)', () => {
  it('stamps updated_at and records an update but leaves generation alone', async () => {
    const guid = await store.write((tx) => insertOrg(tx, 'o'));
    await store.write((tx) => tx.update('organizations', guid, { name: 'spec' }));
    const { now, value } = await timed((tx) => tx.updateStatus('organizations', guid, { status: 'deleting' }));
    expect(value).toBe(true);
    expect(await orgRow(guid)).toMatchObject({ status: 'deleting', generation: 2, updated_at: now });
    expect((await feed()).at(-1)).toEqual(['organizations', guid, 'update']);
  });

  it('writes only where its condition holds', async () => {
    const guid = await store.write((tx) => insertOrg(tx, 'o'));
    const hit = await store.write((tx) => tx.updateStatus('organizations', guid, { status: 'deleting' }, { where: (eb) => eb('status', '=', 'active') }));
    const miss = await store.write((tx) => tx.updateStatus('organizations', guid, { status: 'gone' }, { where: (eb) => eb('status', '=', 'active') }));
    expect([hit, miss]).toEqual([true, false]);
    expect((await orgRow(guid)).status).toBe('deleting');
  });

  it('updateStatusWhere returns the guids it changed without moving their generations', async () => {
    const [a, b] = await store.write(async (tx) => [await insertOrg(tx, 'a'), await insertOrg(tx, 'b')]);
    const changed = await store.write((tx) => tx.updateStatusWhere('organizations', (eb) => eb('guid', '=', a!), { status: 'deleting' }));
    expect(changed).toEqual([a]);
    expect(await orgRow(a!)).toMatchObject({ status: 'deleting', generation: 1 });
    expect((await orgRow(b!)).status).toBe('active');
  });
});

describe('tx.delete', () => {
  it('removes the row and records a delete; a missing row is false and records nothing', async () => {
    const guid = await store.write((tx) => insertOrg(tx, 'o'));
    expect(await store.write((tx) => tx.delete('organizations', guid))).toBe(true);
    expect(await store.write((tx) => tx.delete('organizations', guid))).toBe(false);
    expect(await store.db.selectFrom('organizations').select('guid').execute()).toEqual([]);
    expect(await feed()).toEqual([
      ['organizations', guid, 'create'],
      ['organizations', guid, 'delete'],
    ]);
  });

  it('deleteWhere removes every matching row and records a delete for each', async () => {
    const org = await store.write((tx) => insertOrg(tx, 'o'));
    const spaces = await store.write(async (tx) => [
      await tx.insert('spaces', { ...SPACE_DEFAULTS, name: 's1', organization_guid: org }),
      await tx.insert('spaces', { ...SPACE_DEFAULTS, name: 's2', organization_guid: org }),
    ]);
    const before = await store.latestRevision();
    const deleted = await store.write((tx) => tx.deleteWhere('spaces', (eb) => eb('organization_guid', '=', org)));
    expect(deleted.sort()).toEqual([...spaces].sort());
    expect((await store.changesSince(before)).map((c) => [c.kind, c.op])).toEqual([
      ['spaces', 'delete'],
      ['spaces', 'delete'],
    ]);
  });
});

describe('tx.observeGeneration', () => {
  it('moves observed_generation forward only, with no timestamp, generation or change entry', async () => {
    const space = await store.write(async (tx) => {
      const org = await insertOrg(tx, 'o');
      return tx.insert('spaces', { ...SPACE_DEFAULTS, name: 's', organization_guid: org });
    });
    const app = await store.write((tx) => tx.insert('apps', { name: 'a', space_guid: space }));
    await store.write((tx) => tx.update('apps', app, { name: 'b' }));
    const before = await store.db.selectFrom('apps').selectAll().where('guid', '=', app).executeTakeFirstOrThrow();
    const revision = await store.latestRevision();
    await store.write((tx) => tx.observeGeneration('apps', app, 2));
    await store.write((tx) => tx.observeGeneration('apps', app, 1));
    const after = await store.db.selectFrom('apps').selectAll().where('guid', '=', app).executeTakeFirstOrThrow();
    expect(after).toEqual({ ...before, observed_generation: 2 });
    expect(await store.latestRevision()).toBe(revision);
  });
});
