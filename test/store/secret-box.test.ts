import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { loadOrCreateSecretBox, parseEncryptionKey, SecretBox } from '../../src/store/secret-box.ts';

/** AES-256-GCM sealing of stored secrets (src/store/secret-box.ts) and where its key comes from. */

const dirs: string[] = [];
const tempDir = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-secret-box-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('SecretBox', () => {
  const box = new SecretBox(randomBytes(32));

  it('opens what it sealed, and seals the same text differently each time', () => {
    const a = box.seal('hunter2', 'row-1');
    const b = box.seal('hunter2', 'row-1');
    expect(a).not.toBe(b);
    expect(a).not.toContain('hunter2');
    expect(a).toMatch(new RegExp(`^v1:${box.keyId}:`));
    expect(box.open(a, 'row-1')).toBe('hunter2');
    expect(box.open(box.seal('', 'x'), 'x')).toBe('');
    expect(box.open(box.seal('ünïcödé ✓', 'x'), 'x')).toBe('ünïcödé ✓');
  });

  it('refuses a tampered ciphertext, another context, or another key', () => {
    const sealed = box.seal('secret', 'row-1');
    const raw = Buffer.from(sealed.split(':')[2]!, 'base64');
    raw[raw.length - 1]! ^= 1;
    expect(() => box.open(`v1:${box.keyId}:${raw.toString('base64')}`, 'row-1')).toThrow();
    expect(() => box.open(sealed, 'row-2')).toThrow();
    const other = new SecretBox(randomBytes(32));
    expect(() => other.open(sealed, 'row-1')).toThrow(`secret was sealed with key ${box.keyId}, but KILN_ENCRYPTION_KEY is key ${other.keyId}`);
    expect(() => box.open('plain text', '')).toThrow('not a sealed secret');
  });
});

describe('SecretBox with previous keys', () => {
  it('opens values sealed under a previous key, calls them stale, and seals under the current one', () => {
    const old = randomBytes(32);
    const sealed = new SecretBox(old).seal('x', 'g');
    const rotated = new SecretBox(randomBytes(32), [old]);
    expect(rotated.open(sealed, 'g')).toBe('x');
    expect(rotated.isStale(sealed)).toBe(true);
    expect(rotated.isStale(rotated.seal('x', 'g'))).toBe(false);
  });

  it('seals JSON values, null staying null', () => {
    const box = new SecretBox(randomBytes(32));
    const sealed = box.sealJson({ password: 'hunter2' })!;
    expect(sealed).not.toContain('hunter2');
    expect(box.openJson(sealed)).toEqual({ password: 'hunter2' });
    expect(box.sealJson(null)).toBeNull();
    expect(box.openJson(null)).toBeNull();
  });
});

describe('the encryption key', () => {
  it('is generated into the data dir on first start (mode 0600) and reused afterwards', async () => {
    const dir = tempDir();
    const first = await loadOrCreateSecretBox(dir, undefined);
    const file = path.join(dir, 'encryption-key');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const second = await loadOrCreateSecretBox(dir, undefined);
    expect(second.keyId).toBe(first.keyId);
    expect(second.open(first.seal('x', 'g'), 'g')).toBe('x');
  });

  it('comes from KILN_ENCRYPTION_KEY when set, as hex or base64', async () => {
    const key = randomBytes(32);
    const dir = tempDir();
    const hex = await loadOrCreateSecretBox(dir, key.toString('hex'));
    const b64 = await loadOrCreateSecretBox(dir, key.toString('base64'));
    expect(hex.keyId).toBe(b64.keyId);
    expect(fs.existsSync(path.join(dir, 'encryption-key'))).toBe(false);
    expect(() => parseEncryptionKey('too-short')).toThrow('KILN_ENCRYPTION_KEY must be 32 bytes');
  });
});
