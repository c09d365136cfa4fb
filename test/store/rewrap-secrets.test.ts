import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateToLatest } from '../../src/store/db.ts';
import { rewrapSecrets } from '../../src/store/rewrap-secrets.ts';
import { SecretBox } from '../../src/store/secret-box.ts';
import { Store } from '../../src/store/store.ts';
import { openTestDb, type TestDb } from './db.ts';

describe('key rotation of registry credentials (sealed with their row as context)', () => {
  let db: TestDb;
  let store: Store;
  beforeAll(async () => {
    db = await openTestDb();
    await migrateToLatest(db.handle);
    store = new Store(db.handle);
  });
  afterAll(() => db.close());

  it('re-seals them under the current key with their row as context', async () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const sealed = new SecretBox(oldKey).seal('registry-token', 'rc1');
    await store.write((tx) =>
      tx.insert('registry_credentials', { guid: 'rc1', scope: 'foundation', scope_guid: '', organization_guid: null, space_guid: null, host: 'registry.example.org', username: 'u', secret_type: 'token', secret_ciphertext: sealed }),
    );
    store.secrets = new SecretBox(newKey, [oldKey]);
    expect(await rewrapSecrets(store)).toBe(1);
    const row = await store.db.selectFrom('registry_credentials').select('secret_ciphertext').where('guid', '=', 'rc1').executeTakeFirstOrThrow();
    expect(new SecretBox(newKey).open(row.secret_ciphertext, 'rc1')).toBe('registry-token');
  });
});

describe('key rotation', () => {
  let db: TestDb;
  let store: Store;
  beforeAll(async () => {
    db = await openTestDb();
    await migrateToLatest(db.handle);
    store = new Store(db.handle);
  });
  afterAll(() => db.close());

  it('re-seals every stored secret under the current key', async () => {
    const oldKey = randomBytes(32);
    store.secrets = new SecretBox(oldKey);
    await store.write((tx) =>
      tx.insert('service_brokers', { guid: 'b1', name: 'b', url: 'http://x', auth_enc: store.secrets.sealJson({ username: 'u', password: 'p' })!, space_guid: null, state: 'AVAILABLE' }),
    );
    store.secrets = new SecretBox(randomBytes(32), [oldKey]);
    expect(await rewrapSecrets(store)).toBe(1);
    expect(await rewrapSecrets(store)).toBe(0);
    const row = await store.db.selectFrom('service_brokers').select('auth_enc').where('guid', '=', 'b1').executeTakeFirstOrThrow();
    expect(store.secrets.isStale(row.auth_enc)).toBe(false);
    expect(store.secrets.openJson(row.auth_enc)).toEqual({ username: 'u', password: 'p' });
  });
});
