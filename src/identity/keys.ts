import fs from 'node:fs/promises';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { exportJWK, exportSPKI, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';

export const SIGNING_ALG = 'RS256';

export interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** The public half as published on /token_keys. */
  publicJwk: JWK & { kid: string; alg: string; use: string };
  publicPem: string;
}

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi'] as const;

/**
 * Loads the token signing key from `<dir>/signing-key.json`, creating it (mode 0600) on first start.
 * Keeping it on disk means tokens stay valid across restarts.
 */
export async function loadOrCreateSigningKey(dir: string): Promise<SigningKey> {
  const file = path.join(dir, 'signing-key.json');
  let jwk: JWK & { kid: string };
  try {
    jwk = JSON.parse(await fs.readFile(file, 'utf8')) as JWK & { kid: string };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read signing key ${file}: ${String(err)}`);
    const pair = await generateKeyPair(SIGNING_ALG, { extractable: true, modulusLength: 2048 });
    jwk = { ...(await exportJWK(pair.privateKey)), kid: `kiln-${randomUUID()}`, alg: SIGNING_ALG };
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    // 'wx' so two processes starting at once cannot overwrite each other's key.
    try {
      await fs.writeFile(file, JSON.stringify(jwk), { mode: 0o600, flag: 'wx' });
    } catch (writeErr) {
      if ((writeErr as NodeJS.ErrnoException).code !== 'EEXIST') throw writeErr;
      jwk = JSON.parse(await fs.readFile(file, 'utf8')) as JWK & { kid: string };
    }
  }
  const publicMembers: JWK = { ...jwk };
  for (const m of PRIVATE_MEMBERS) delete publicMembers[m];
  const privateKey = (await importJWK(jwk, SIGNING_ALG)) as CryptoKey;
  const publicKey = (await importJWK(publicMembers, SIGNING_ALG, { extractable: true })) as CryptoKey;
  return {
    kid: jwk.kid,
    privateKey,
    publicKey,
    publicJwk: { ...publicMembers, kid: jwk.kid, alg: SIGNING_ALG, use: 'sig' },
    publicPem: await exportSPKI(publicKey),
  };
}
