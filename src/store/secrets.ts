import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

/**
 * Secrets at rest (issue 9 §8): broker credentials, service instance and binding credentials and parameters are
 * stored as `v1:<key id>:<iv>:<tag>:<ciphertext>` (AES-256-GCM, base64 parts). The key id is a short hash of the
 * key, so a value written under an older key names it: rotation is "start with the new key as
 * KILN_ENCRYPTION_KEY and the old one in KILN_ENCRYPTION_KEY_PREVIOUS" — reads try both, writes use the new one.
 */
export class SecretBox {
  private readonly keys = new Map<string, Buffer>();
  private readonly currentId: string;

  constructor(current: Buffer, previous: Buffer[] = []) {
    if (current.length !== 32) throw new Error('the encryption key must be 32 bytes');
    this.currentId = keyId(current);
    this.keys.set(this.currentId, current);
    for (const k of previous) this.keys.set(keyId(k), k);
  }

  encrypt(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.keys.get(this.currentId)!, iv);
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return ['v1', this.currentId, iv.toString('base64'), cipher.getAuthTag().toString('base64'), body.toString('base64')].join(':');
  }

  decrypt(stored: string): string {
    const [v, id, iv, tag, body] = stored.split(':');
    if (v !== 'v1' || !id || iv === undefined || tag === undefined || body === undefined) throw new Error('not an encrypted value');
    const key = this.keys.get(id);
    if (!key) throw new Error(`value encrypted under an unknown key (${id}); set KILN_ENCRYPTION_KEY_PREVIOUS`);
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64'));
    decipher.setAuthTag(Buffer.from(tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(body, 'base64')), decipher.final()]).toString('utf8');
  }

  /** The current key and the previous keys by id, for re-sealing values of the other sealed format (rewrap-secrets.ts). */
  get currentKey(): Buffer {
    return this.keys.get(this.currentId)!;
  }

  keyById(id: string): Buffer | undefined {
    return this.keys.get(id);
  }

  /** Whether a stored value was sealed under an older key (rotation re-seals it under the current one). */
  isStale(stored: string): boolean {
    return stored.split(':')[1] !== this.currentId;
  }

  /** JSON in, encrypted text out (null stays null). */
  seal(value: unknown): string | null {
    return value === undefined || value === null ? null : this.encrypt(JSON.stringify(value));
  }

  open<T = unknown>(stored: string | null | undefined): T | null {
    return stored ? (JSON.parse(this.decrypt(stored)) as T) : null;
  }
}

const keyId = (key: Buffer) => createHash('sha256').update(key).digest('hex').slice(0, 8);

/** A key given as 64 hex digits or as base64 of 32 bytes. */
export function parseKey(text: string): Buffer {
  const t = text.trim();
  const key = /^[0-9a-f]{64}$/i.test(t) ? Buffer.from(t, 'hex') : Buffer.from(t, 'base64');
  if (key.length !== 32) throw new Error('KILN_ENCRYPTION_KEY must be 32 bytes (64 hex digits or base64)');
  return key;
}

/**
 * The configured key, else `<dataDir>/encryption-key` (created 0600 on first start, like the signing key). Losing
 * the generated file makes stored credentials unreadable: back it up with the database, or configure the key.
 */
export async function loadSecretBox(dataDir: string, configured: string | undefined, previous: string | undefined): Promise<SecretBox> {
  const prev = previous ? previous.split(',').filter(Boolean).map(parseKey) : [];
  if (configured) return new SecretBox(parseKey(configured), prev);
  const file = path.join(dataDir, 'encryption-key');
  try {
    return new SecretBox(parseKey(await fs.readFile(file, 'utf8')), prev);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read encryption key ${file}: ${String(err)}`);
  }
  await fs.mkdir(dataDir, { recursive: true, mode: 0o700 });
  try {
    await fs.writeFile(file, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return new SecretBox(parseKey(await fs.readFile(file, 'utf8')), prev);
}
