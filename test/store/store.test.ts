import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KilnError } from '../../src/domain/errors.ts';
import { newGuid, type Change, type Store, type WriteTx } from '../../src/store/store.ts';
import { openTestStore, ORG_DEFAULTS, SPACE_DEFAULTS } from './db.ts';

let store: Store;
let close: () => Promise<void>;

beforeEach(async () => {
  ({ store, close } = await openTestStore());
});
afterEach(async () => {
  await close();
});

async function insertOrg(tx: WriteTx, name: string, guid = newGuid()): Promise<string> {
  await tx.db
    .insertInto('organizations')
    .values({ ...ORG_DEFAULTS, guid, name, created_at: tx.now, updated_at: tx.now })
    .execute();
  tx.changed('organizations', guid, 'create');
  return guid;
}

const countRows = async (table: 'organizations' | 'spaces' | 'changes') =>
  Number(
    (await store.db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n,
  );

const orgRow = (guid: string) => store.db.selectFrom('organizations').selectAll().where('guid', '=', guid).executeTakeFirst();

describe('write: one transaction per use-case', () => {
  it('commits rows and their change-feed entries together and returns the callback value', async () => {
    const guid = await store.write(async (tx) => insertOrg(tx, 'o1'));
    const row = await orgRow(guid);
    expect(row?.name).toBe('o1');
    expect(row?.generation).toBe(1);
    const changes = await store.changesSince(0);
    expect(changes).toHaveLength(1);
    expect(changes[0]).toMatchObject({ kind: 'organizations', guid, op: 'create' });
  });

  it('stamps every row and change of one write with the same timestamp', async () => {
    let now = '';
    const [a, b] = await store.write(async (tx) => {
      now = tx.now;
      return [await insertOrg(tx, 'a'), await insertOrg(tx, 'b')];
    });
    expect(now).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect((await orgRow(a!))?.created_at).toBe(now);
    expect((await orgRow(b!))?.updated_at).toBe(now);
    for (const c of await store.changesSince(0)) expect(c.created_at).toBe(now);
  });

  it('rolls back every row of a failing write and appends no change-feed entries', async () => {
    const before = await store.latestRevision();
    const boom = new Error('boom');
    await expect(
      store.write(async (tx) => {
        const org = await insertOrg(tx, 'doomed');
        await tx.db
          .insertInto('spaces')
          .values({ ...SPACE_DEFAULTS, guid: newGuid(), name: 's', organization_guid: org, created_at: tx.now, updated_at: tx.now })
          .execute();
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await countRows('organizations')).toBe(0);
    expect(await countRows('spaces')).toBe(0);
    expect(await countRows('changes')).toBe(0);
    expect(await store.latestRevision()).toBe(before);
  });

  it('rolls back when a statement fails inside the write (unique violation)', async () => {
    await store.write((tx) => insertOrg(tx, 'taken'));
    const revision = await store.latestRevision();
    await expect(
      store.write(async (tx) => {
        await insertOrg(tx, 'fresh');
        await insertOrg(tx, 'TAKEN'); // names are unique case-insensitively
      }),
    ).rejects.toThrow();
    const names = (await store.db.selectFrom('organizations').select('name').execute()).map((r) => r.name);
    expect(names).toEqual(['taken']);
    expect(await store.latestRevision()).toBe(revision);
  });

  it('records each (kind, guid, op) once per write', async () => {
    const guid = newGuid();
    await store.write(async (tx) => {
      await insertOrg(tx, 'o', guid);
      tx.changed('organizations', guid, 'create');
      tx.changed('organizations', guid, 'update');
      tx.changed('spaces', guid, 'update');
    });
    const changes = (await store.changesSince(0)).map((c) => [c.kind, c.guid, c.op]);
    expect(changes).toEqual([
      ['organizations', guid, 'create'],
      ['organizations', guid, 'update'],
      ['spaces', guid, 'update'],
    ]);
  });

  it('appends nothing to the feed for a write that records no change', async () => {
    await store.write(async (tx) => {
      await tx.db.insertInto('settings').values({ key: 'k', value: 'v' }).execute();
    });
    expect(await countRows('changes')).toBe(0);
    expect((await store.db.selectFrom('settings').selectAll().execute()).map((r) => r.key)).toEqual(['k']);
  });
});

describe('change feed', () => {
  it('starts empty at revision 0', async () => {
    expect(await store.latestRevision()).toBe(0);
    expect(await store.changesSince(0)).toEqual([]);
  });

  it('assigns strictly increasing revisions across and within writes, recording kind/guid/op', async () => {
    const a = await store.write((tx) => insertOrg(tx, 'a'));
    const [b, c] = await store.write(async (tx) => [await insertOrg(tx, 'b'), await insertOrg(tx, 'c')]);
    const org = (await orgRow(a))!;
    await store.write((tx) => tx.update('organizations', a, { name: 'a2' }, { expectedGeneration: org.generation }));
    await store.write(async (tx) => {
      await tx.db.deleteFrom('organizations').where('guid', '=', b!).execute();
      tx.changed('organizations', b!, 'delete');
    });

    const feed = await store.changesSince(0);
    expect(feed.map((f) => [f.guid, f.op])).toEqual([
      [a, 'create'],
      [b, 'create'],
      [c, 'create'],
      [a, 'update'],
      [b, 'delete'],
    ]);
    for (const f of feed) expect(f.kind).toBe('organizations');
    const revisions = feed.map((f) => f.revision);
    for (let i = 1; i < revisions.length; i++) expect(revisions[i]!).toBeGreaterThan(revisions[i - 1]!);
    expect(typeof revisions[0]).toBe('number');
    expect(await store.latestRevision()).toBe(revisions.at(-1));
  });

  it('keeps revisions increasing after a rolled-back write', async () => {
    await store.write((tx) => insertOrg(tx, 'a'));
    const first = await store.latestRevision();
    await expect(
      store.write(async (tx) => {
        await insertOrg(tx, 'b');
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    await store.write((tx) => insertOrg(tx, 'c'));
    const feed = await store.changesSince(0);
    expect(feed).toHaveLength(2);
    expect(feed[1]!.revision).toBeGreaterThan(first);
  });

  it('changesSince returns only later revisions, oldest first, up to the limit', async () => {
    const guids: string[] = [];
    for (let i = 0; i < 5; i++) guids.push(await store.write((tx) => insertOrg(tx, `o${i}`)));
    const all = await store.changesSince(0);
    expect(all.map((c) => c.guid)).toEqual(guids);

    const afterSecond = await store.changesSince(all[1]!.revision);
    expect(afterSecond.map((c) => c.guid)).toEqual(guids.slice(2));

    const limited = await store.changesSince(all[0]!.revision, 2);
    expect(limited.map((c) => c.guid)).toEqual(guids.slice(1, 3));

    expect(await store.changesSince(all.at(-1)!.revision)).toEqual([]);
    expect(await store.changesSince(await store.latestRevision())).toEqual([]);
  });

  it('lets a follower page through the feed without gaps or repeats', async () => {
    await store.write(async (tx) => {
      for (let i = 0; i < 7; i++) await insertOrg(tx, `bulk${i}`);
    });
    const seen: number[] = [];
    let cursor = 0;
    for (;;) {
      const batch = await store.changesSince(cursor, 3);
      if (batch.length === 0) break;
      seen.push(...batch.map((c) => c.revision));
      cursor = batch.at(-1)!.revision;
    }
    expect(seen).toEqual((await store.changesSince(0)).map((c) => c.revision));
    expect(seen).toHaveLength(7);
  });
});

describe('optimistic concurrency (tx.update)', () => {
  it('updates the row, bumps generation and updated_at, and records an update', async () => {
    const guid = await store.write((tx) => insertOrg(tx, 'o'));
    const before = (await orgRow(guid))!;
    let now = '';
    await store.write(async (tx) => {
      now = tx.now;
      await tx.update('organizations', guid, { name: 'renamed', suspended: 1 }, { expectedGeneration: before.generation });
    });
    const after = (await orgRow(guid))!;
    expect(after).toMatchObject({ name: 'renamed', suspended: 1, generation: before.generation + 1, updated_at: now });
    expect(after.created_at).toBe(before.created_at);
    const last = (await store.changesSince(0)).at(-1)!;
    expect(last).toMatchObject({ kind: 'organizations', guid, op: 'update' });
  });

  it('rejects a stale generation with a CF 422 and rolls the whole write back', async () => {
    const guid = await store.write((tx) => insertOrg(tx, 'o'));
    await store.write((tx) => tx.update('organizations', guid, { name: 'first' }, { expectedGeneration: 1 }));
    const revision = await store.latestRevision();

    const err = await store
      .write(async (tx) => {
        await insertOrg(tx, 'side-effect');
        await tx.update('organizations', guid, { name: 'second' }, { expectedGeneration: 1 });
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KilnError);
    expect((err as KilnError).status).toBe(422);
    expect((err as KilnError).errorName).toBe('UnprocessableEntity');
    expect((err as KilnError).detail).toMatch(/organization was modified by another request/);

    const row = (await orgRow(guid))!;
    expect(row).toMatchObject({ name: 'first', generation: 2 });
    expect(await countRows('organizations')).toBe(1);
    expect(await store.latestRevision()).toBe(revision);
  });

  it('treats an update of a missing row as a conflict', async () => {
    await expect(store.write((tx) => tx.update('spaces', newGuid(), { name: 'x' }, { expectedGeneration: 1 }))).rejects.toMatchObject({
      errorName: 'UnprocessableEntity',
      detail: expect.stringMatching(/^The space was modified/),
    });
    expect(await countRows('changes')).toBe(0);
  });

  it('lets exactly one of two concurrent writers holding the same generation win', async () => {
    const guid = await store.write((tx) => insertOrg(tx, 'o'));
    const results = await Promise.allSettled(
      ['left', 'right'].map((name) => store.write((tx) => tx.update('organizations', guid, { name }, { expectedGeneration: 1 }))),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(ok).toHaveLength(1);
    expect(failed).toHaveLength(1);
    expect(failed[0]!.reason).toBeInstanceOf(KilnError);
    const row = (await orgRow(guid))!;
    expect(row.generation).toBe(2);
    expect(['left', 'right']).toContain(row.name);
    const updates = (await store.changesSince(0)).filter((c) => c.op === 'update');
    expect(updates).toHaveLength(1);
  });

  it('allows successive updates that each read the current generation', async () => {
    const guid = await store.write((tx) => insertOrg(tx, 'o'));
    for (let i = 0; i < 3; i++) {
      await store.write(async (tx) => {
        const row = await tx.db.selectFrom('organizations').select('generation').where('guid', '=', guid).executeTakeFirstOrThrow();
        await tx.update('organizations', guid, { name: `n${i}` }, { expectedGeneration: row.generation });
      });
    }
    expect((await orgRow(guid))!).toMatchObject({ name: 'n2', generation: 4 });
  });
});

describe("'changes' event", () => {
  it('fires once after commit with the changes, and watchers already see the committed rows', async () => {
    const events: Change[][] = [];
    let visibleOnEvent: Promise<number> | undefined;
    store.events.on('changes', (changes: Change[]) => {
      events.push(changes);
      // On PostgreSQL this query runs on another pooled connection, so it only sees committed data.
      visibleOnEvent = store.db
        .selectFrom('changes')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirstOrThrow()
        .then((r) => Number(r.n));
    });

    const guid = await store.write(async (tx) => {
      const g = await insertOrg(tx, 'o');
      expect(events).toHaveLength(0);
      return g;
    });
    expect(events).toEqual([[{ kind: 'organizations', guid, op: 'create' }]]);
    expect(await visibleOnEvent).toBe(1);
  });

  it('does not fire for a rolled-back write or for a write without changes', async () => {
    const events: Change[][] = [];
    store.events.on('changes', (c: Change[]) => events.push(c));
    await expect(
      store.write(async (tx) => {
        await insertOrg(tx, 'o');
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    const guid = await store.write((tx) => insertOrg(tx, 'base'));
    await expect(store.write((tx) => tx.update('organizations', guid, { name: 'x' }, { expectedGeneration: 99 }))).rejects.toBeInstanceOf(KilnError);
    await store.write(async (tx) => {
      await tx.db.insertInto('settings').values({ key: 'quiet', value: '1' }).execute();
    });
    expect(events).toEqual([[{ kind: 'organizations', guid, op: 'create' }]]);
  });
});

describe('dataVersion (what the list cache checks)', () => {
  it('stays put across reads and moves with every committed write, also after a rolled-back one', async () => {
    // On PostgreSQL the version is the server's snapshot, which other databases on the same server (the other
    // test files running beside this one) move too; reads alone must leave it put whenever the server is quiet.
    let readsKeptIt = false;
    for (let attempt = 0; attempt < 20 && !readsKeptIt; attempt++) {
      const before = await store.dataVersion();
      await countRows('organizations');
      await store.db.selectFrom('spaces').selectAll().execute();
      readsKeptIt = (await store.dataVersion()) === before;
    }
    expect(readsKeptIt).toBe(true);
    const v0 = await store.dataVersion();

    await store.write(async (tx) => insertOrg(tx, 'dv-1'));
    const v1 = await store.dataVersion();
    expect(v1).not.toBe(v0);

    await expect(
      store.write(async (tx) => {
        await insertOrg(tx, 'dv-2');
        throw new KilnError('UnprocessableEntity', 'no');
      }),
    ).rejects.toThrow();
    const v2 = await store.dataVersion();
    await store.write(async (tx) => insertOrg(tx, 'dv-3'));
    expect(await store.dataVersion()).not.toBe(v2);
    expect(await store.dataVersion()).not.toBe(v1);
  });
});
