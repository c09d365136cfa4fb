import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateToLatest } from '../../src/store/db.ts';
import { rewrapSecrets } from '../../src/store/rewrap-secrets.ts';
import { loadSecretBox, SecretBox } from '../../src/store/secrets.ts';
import { SecretBox as ContextBox } from '../../src/store/secret-box.ts';
import { Store } from '../../src/store/store.ts';
import { openTestDb, type TestDb } from './db.ts';

describe('the secret box', () => {
  it('round-trips a value without its plaintext in the sealed text', () => {
    const box = new SecretBox(randomBytes(32));
    const sealed = box.seal({ password: 'hunter2' })!;
    expect(sealed).not.toContain('hunter2');
    expect(sealed.startsWith('v1:')).toBe(true);
    expect(box.open(sealed)).toEqual({ password: 'hunter2' });
    expect(box.seal(null)).toBeNull();
  });

  it('refuses a value sealed under another key, and a tampered one', () => {
    const a = new SecretBox(randomBytes(32));
    const b = new SecretBox(randomBytes(32));
    const sealed = a.encrypt('secret');
    expect(() => b.decrypt(sealed)).toThrow(/unknown key/);
    const parts = sealed.split(':');
    parts[4] = Buffer.from('tampered!').toString('base64');
    expect(() => a.decrypt(parts.join(':'))).toThrow();
  });

  it('reads values sealed under a previous key', () => {
    const old = randomBytes(32);
    const sealed = new SecretBox(old).encrypt('x');
    const rotated = new SecretBox(randomBytes(32), [old]);
    expect(rotated.decrypt(sealed)).toBe('x');
    expect(rotated.isStale(sealed)).toBe(true);
  });

  it('generates a key file (0600) in the data dir once and reuses it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-secrets-'));
    try {
      const first = await loadSecretBox(dir, undefined, undefined);
      const file = path.join(dir, 'encryption-key');
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      const second = await loadSecretBox(dir, undefined, undefined);
      expect(second.decrypt(first.encrypt('same key'))).toBe('same key');
      const configured = await loadSecretBox(dir, 'ab'.repeat(32), undefined);
      expect(() => configured.decrypt(first.encrypt('x'))).toThrow();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('key rotation of registry credentials (the other sealed format)', () => {
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
    const sealed = new ContextBox(oldKey).seal('registry-token', 'rc1');
    await store.write(async (tx) => {
      await tx.db
        .insertInto('registry_credentials')
        .values({ guid: 'rc1', created_at: tx.now, updated_at: tx.now, generation: 1, scope: 'foundation', scope_guid: '', organization_guid: null, space_guid: null, host: 'registry.example.org', username: 'u', secret_type: 'token', secret_ciphertext: sealed })
        .execute();
    });
    store.secrets = new SecretBox(newKey, [oldKey]);
    expect(await rewrapSecrets(store)).toBe(1);
    const row = await store.db.selectFrom('registry_credentials').select('secret_ciphertext').where('guid', '=', 'rc1').executeTakeFirstOrThrow();
    expect(new ContextBox(newKey).open(row.secret_ciphertext, 'rc1')).toBe('registry-token');
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
    await store.write(async (tx) => {
      await tx.db
        .insertInto('service_brokers')
        .values({ guid: 'b1', created_at: tx.now, updated_at: tx.now, generation: 1, name: 'b', url: 'http://x', auth_enc: store.secrets.seal({ username: 'u', password: 'p' })!, space_guid: null, state: 'AVAILABLE' })
        .execute();
    });
    store.secrets = new SecretBox(randomBytes(32), [oldKey]);
    expect(await rewrapSecrets(store)).toBe(1);
    expect(await rewrapSecrets(store)).toBe(0);
    const row = await store.db.selectFrom('service_brokers').select('auth_enc').where('guid', '=', 'b1').executeTakeFirstOrThrow();
    expect(store.secrets.isStale(row.auth_enc)).toBe(false);
    expect(store.secrets.open(row.auth_enc)).toEqual({ username: 'u', password: 'p' });
  });
});
