import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChangeNotifier, REMOTE_CHANGES } from '../../src/ha/change-notifier.ts';
import { migrateToLatest, openDatabase } from '../../src/store/db.ts';
import { Store } from '../../src/store/store.ts';

const pgUrl = process.env.KILN_TEST_DATABASE_URL;

/** Two stores on one PostgreSQL database, as two replicas: a commit on one wakes the other's feed at once. */
describe.skipIf(!pgUrl)('change feed LISTEN/NOTIFY', () => {
  const name = `kiln_notify_${process.pid}_${Date.now()}`;
  let url = '';
  let writer: Store;
  let reader: Store;
  let notifier: ChangeNotifier;
  beforeAll(async () => {
    const admin = new pg.Client({ connectionString: pgUrl });
    await admin.connect();
    await admin.query(`create database ${name}`);
    await admin.end();
    const u = new URL(pgUrl!);
    u.pathname = `/${name}`;
    url = u.toString();
    const handle = openDatabase({ kind: 'postgres', url });
    await migrateToLatest(handle);
    writer = new Store(handle);
    reader = new Store(openDatabase({ kind: 'postgres', url }));
    notifier = new ChangeNotifier(url, reader, pino({ level: 'silent' }));
    await notifier.start();
  });
  afterAll(async () => {
    await notifier?.stop();
    await writer?.close();
    await reader?.close();
    const admin = new pg.Client({ connectionString: pgUrl });
    await admin.connect();
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.end();
  });

  it('notifies at commit, only for writes that touch the feed, and not for a rollback', async () => {
    const woken: number[] = [];
    reader.events.on(REMOTE_CHANGES, () => woken.push(Date.now()));
    const settle = () => new Promise((r) => setTimeout(r, 300));
    await settle();
    woken.length = 0;

    const t0 = Date.now();
    await writer.write(async (tx) => tx.changed('apps', 'guid-1', 'update'));
    const deadline = Date.now() + 5000;
    while (woken.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(woken.length).toBe(1);
    console.log(`NOTIFY reached the other store ${woken[0]! - t0} ms after the write began`);

    await writer.write(async () => undefined);
    await expect(
      writer.write(async (tx) => {
        tx.changed('apps', 'guid-2', 'update');
        await tx.db.insertInto('changes').values({ kind: 'apps', guid: 'guid-2', op: 'update', created_at: tx.now }).execute();
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    await settle();
    expect(woken.length).toBe(1);
    expect(await reader.latestRevision()).toBe(1);
  });
});
