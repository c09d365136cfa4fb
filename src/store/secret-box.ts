import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

/**
 * Encryption at rest for every secret Kiln must be able to read back — broker credentials, service instance and
 * binding credentials and parameters, registry passwords and tokens: AES-256-GCM with a fresh 96-bit nonce per
 * value. A sealed value reads `v1:<key id>:<base64 nonce|tag|ciphertext>`; the key id (the first 8 hex digits of
 * SHA-256 of the key) names the key a value was sealed under, so a wrong key fails with a clear message and key
 * rotation works: start with the new key as KILN_ENCRYPTION_KEY and the old one in KILN_ENCRYPTION_KEY_PREVIOUS —
 * reads accept both, writes use the new one, and `rewrapSecrets` re-seals what is stale. `context` (e.g. the row's
 * guid) is bound as additional authenticated data, so a ciphertext copied onto another row does not open.
 */
export class SecretBox {
  readonly keyId: string;
  private readonly keys = new Map<string, Buffer>();

  constructor(current: Buffer, previous: Buffer[] = []) {
    if (current.length !== 32) throw new Error('the encryption key must be 32 bytes');
    this.keyId = keyIdOf(current);
    for (const k of previous) this.keys.set(keyIdOf(k), k);
    this.keys.set(this.keyId, current);
  }

  seal(plaintext: string, context = ''): string {
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.keys.get(this.keyId)!, nonce);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return `v1:${this.keyId}:${Buffer.concat([nonce, cipher.getAuthTag(), body]).toString('base64')}`;
  }

  open(sealed: string, context = ''): string {
    const [version, keyId, payload] = sealed.split(':');
    if (version !== 'v1' || !keyId || payload === undefined) throw new Error('not a sealed secret');
    const key = this.keys.get(keyId);
    if (!key) throw new Error(`secret was sealed with key ${keyId}, but KILN_ENCRYPTION_KEY is key ${this.keyId} (set KILN_ENCRYPTION_KEY_PREVIOUS to read older keys)`);
    const raw = Buffer.from(payload, 'base64');
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
    decipher.setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
  }

  /** Whether a sealed value was sealed under an older key than the current one. */
  isStale(sealed: string): boolean {
    return sealed.split(':')[1] !== this.keyId;
  }

  /** A JSON value sealed (null and undefined stay null). */
  sealJson(value: unknown, context = ''): string | null {
    return value === undefined || value === null ? null : this.seal(JSON.stringify(value), context);
  }

  openJson<T = unknown>(sealed: string | null | undefined, context = ''): T | null {
    return sealed ? (JSON.parse(this.open(sealed, context)) as T) : null;
  }
}

const keyIdOf = (key: Buffer): string => createHash('sha256').update(key).digest('hex').slice(0, 8);

/** A configured key: 64 hex digits or base64 of 32 bytes. */
export function parseEncryptionKey(text: string): Buffer {
  const t = text.trim();
  const key = /^[0-9a-f]{64}$/i.test(t) ? Buffer.from(t, 'hex') : Buffer.from(t, 'base64');
  if (key.length !== 32) throw new Error('KILN_ENCRYPTION_KEY must be 32 bytes, written as 64 hex digits or base64');
  return key;
}

/**
 * The box for `KILN_ENCRYPTION_KEY` (plus the comma-separated `previous` keys), or — when it is unset — for a key
 * generated into `<dataDir>/encryption-key` (mode 0600) on first start, as the token signing key is. Losing that
 * file makes stored secrets unreadable, so installations with replicas or disposable disks set the variable.
 */
export async function loadOrCreateSecretBox(dataDir: string, configured: string | undefined, previous?: string): Promise<SecretBox> {
  const prev = previous ? previous.split(',').filter((k) => k.trim() !== '').map(parseEncryptionKey) : [];
  if (configured !== undefined) return new SecretBox(parseEncryptionKey(configured), prev);
  const file = path.join(dataDir, 'encryption-key');
  try {
    return new SecretBox(parseEncryptionKey(await fs.readFile(file, 'utf8')), prev);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read encryption key ${file}: ${String(err)}`);
  }
  await fs.mkdir(dataDir, { recursive: true, mode: 0o700 });
  try {
    // 'wx' so two processes starting at once cannot overwrite each other's key.
    await fs.writeFile(file, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return new SecretBox(parseEncryptionKey(await fs.readFile(file, 'utf8')), prev);
}
