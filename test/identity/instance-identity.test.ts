import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callerIdentityOf, matchingSource } from '../../src/identity/caller-identity.ts';
import forge from 'node-forge';
import { certificateSerial, InstanceIdentityCA, type IssuedCredential } from '../../src/identity/instance-identity.ts';

const subject = {
  appGuid: 'aaaaaaaa-1111-4111-8111-111111111111',
  spaceGuid: 'bbbbbbbb-2222-4222-8222-222222222222',
  organizationGuid: 'cccccccc-3333-4333-8333-333333333333',
  instanceGuid: 'dddddddd-4444-4444-8444-444444444444',
  ip: '127.0.0.1',
};

let dir: string;
let ca: InstanceIdentityCA;
let cred: IssuedCredential;

beforeAll(async () => {
  dir = join(mkdtempSync(join(tmpdir(), 'kiln-ca-')), 'instance-identity');
  ca = await InstanceIdentityCA.open(dir);
  cred = await ca.issue(subject);
  // RSA keys are generated here; on a loaded machine that can take seconds.
}, 60_000);

/** Splits a PEM bundle into its certificates. */
const certsOf = (pem: string) => pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!.map((c) => new X509Certificate(c));

describe('the instance identity CA', () => {
  it('keeps its key 0600 in a 0700 directory and reuses it on the next start', async () => {
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, 'ca.key')).mode & 0o777).toBe(0o600);
    expect(ca.keyMatchesCertificate()).toBe(true);
    const again = await InstanceIdentityCA.open(dir);
    expect(again.caCertPem).toBe(ca.caCertPem);
    expect(readFileSync(join(dir, 'ca.crt'), 'utf8')).toBe(ca.caCertPem);
  });

  it('is a CA certificate that may only sign', () => {
    const cert = new X509Certificate(ca.caCertPem);
    expect(cert.ca).toBe(true);
    expect(cert.subject).toMatch(/CN=Kiln instance identity CA [0-9a-f]{12}/);
  });
});

describe('an issued instance credential', () => {
  it('names the app, space and org in OUs and the instance in the CN, like Diego', () => {
    const [leaf] = certsOf(cred.certPem);
    expect(leaf!.subject.split('\n')).toEqual([
      `OU=organization:${subject.organizationGuid}`,
      `OU=space:${subject.spaceGuid}`,
      `OU=app:${subject.appGuid}`,
      `CN=${subject.instanceGuid}`,
    ]);
    expect(leaf!.subjectAltName).toBe(`DNS:${subject.instanceGuid}, IP Address:127.0.0.1`);
    expect(leaf!.ca).toBe(false);
  });

  it('is signed by the CA, carries the CA after the leaf, and its key is the leaf key', () => {
    const [leaf, issuer] = certsOf(cred.certPem);
    const caCert = new X509Certificate(ca.caCertPem);
    expect(leaf!.checkIssued(caCert)).toBe(true);
    expect(leaf!.verify(caCert.publicKey)).toBe(true);
    expect(issuer!.fingerprint256).toBe(caCert.fingerprint256);
    expect(leaf!.checkPrivateKey(createPrivateKey(cred.keyPem))).toBe(true);
  });

  it('lives for the configured lifetime (24 h by default) from a few minutes back', () => {
    const [leaf] = certsOf(cred.certPem);
    const lifetime = new Date(leaf!.validTo).getTime() - Date.now();
    expect(lifetime).toBeGreaterThan(24 * 3600_000 - 60_000);
    expect(lifetime).toBeLessThanOrEqual(24 * 3600_000);
    expect(new Date(leaf!.validFrom).getTime()).toBeLessThan(Date.now());
    expect(cred.notAfter.getTime() - cred.notBefore.getTime()).toBeGreaterThan(24 * 3600_000);
  });

  it('is never the same key twice', async () => {
    const other = await ca.issue(subject);
    expect(other.keyPem).not.toBe(cred.keyPem);
  });
});

describe('verifying callers over mutual TLS', () => {
  let server: tls.Server;
  let port: number;
  const seen: Array<{ authorized: boolean; error: string | undefined; ou: string | string[] | undefined }> = [];

  beforeAll(async () => {
    const serverCred = await ca.serverCredential(['localhost', '127.0.0.1']);
    server = tls.createServer({ key: serverCred.keyPem, cert: serverCred.certPem, ca: [ca.caCertPem], requestCert: true, rejectUnauthorized: false }, (socket) => {
      const peer = socket.getPeerCertificate();
      seen.push({ authorized: socket.authorized, error: socket.authorizationError?.toString(), ou: peer?.subject?.OU });
      socket.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const connect = (opts: tls.ConnectionOptions) =>
    new Promise<void>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: [ca.caCertPem], ...opts }, () => undefined);
      socket.on('data', () => undefined);
      socket.on('end', () => resolve());
      socket.on('error', reject);
    });

  it('accepts an issued credential and reads the caller from it', async () => {
    await connect({ cert: cred.certPem, key: cred.keyPem });
    const last = seen.at(-1)!;
    expect(last.authorized).toBe(true);
    expect(callerIdentityOf(last.ou)).toEqual({ appGuid: subject.appGuid, spaceGuid: subject.spaceGuid, organizationGuid: subject.organizationGuid });
  });

  it('does not authorize a certificate of another CA, or none', async () => {
    const foreign = await (await InstanceIdentityCA.open(join(mkdtempSync(join(tmpdir(), 'kiln-ca-')), 'x'))).issue(subject);
    await connect({ cert: foreign.certPem, key: foreign.keyPem });
    expect(seen.at(-1)!.authorized).toBe(false);
    await connect({});
    expect(seen.at(-1)!.authorized).toBe(false);
  });

  it('does not authorize an expired credential', async () => {
    const shortLived = await InstanceIdentityCA.open(dir, { lifetimeMs: 1 });
    const expired = await shortLived.issue(subject);
    await new Promise((r) => setTimeout(r, 1100));
    await connect({ cert: expired.certPem, key: expired.keyPem });
    expect(seen.at(-1)!.authorized).toBe(false);
    expect(seen.at(-1)!.error).toBe('CERT_HAS_EXPIRED');
  });
});

describe('matching callers against route policy sources (gorouter evaluateRoutePolicies)', () => {
  const caller = { appGuid: 'a1', spaceGuid: 's1', organizationGuid: 'o1' };

  it('matches the app, its space, its org or cf:any, and nothing else', () => {
    expect(matchingSource(['cf:app:a1'], caller)).toBe('cf:app:a1');
    expect(matchingSource(['cf:app:a2', 'cf:space:s1'], caller)).toBe('cf:space:s1');
    expect(matchingSource(['cf:org:o1'], caller)).toBe('cf:org:o1');
    expect(matchingSource(['cf:any'], caller)).toBe('cf:any');
    expect(matchingSource(['cf:app:a2', 'cf:space:s2', 'cf:org:o2'], caller)).toBeUndefined();
    expect(matchingSource([], caller)).toBeUndefined();
    expect(matchingSource(['cf:space:s1'], { appGuid: 'a1' })).toBeUndefined();
  });

  it('reads no identity from a certificate without an app OU', () => {
    expect(callerIdentityOf(undefined)).toBeUndefined();
    expect(callerIdentityOf(['space:s1'])).toBeUndefined();
    expect(callerIdentityOf('app:a1')).toEqual({ appGuid: 'a1' });
  });
});

describe('certificate serials', () => {
  // A small key is enough: only the serial's encoding is under test.
  let keys: forge.pki.rsa.KeyPair | undefined;
  /** A self-signed forge certificate with this serial, parsed by node (OpenSSL), as every Kiln certificate is. */
  const parses = (serialNumber: string) => {
    keys ??= forge.pki.rsa.generateKeyPair(512);
    const cert = forge.pki.createCertificate();
    cert.publicKey = keys.publicKey;
    cert.serialNumber = serialNumber;
    cert.validity.notBefore = new Date(Date.now() - 60_000);
    cert.validity.notAfter = new Date(Date.now() + 3_600_000);
    cert.setSubject([{ shortName: 'CN', value: 'serial' }]);
    cert.setIssuer([{ shortName: 'CN', value: 'serial' }]);
    cert.sign(keys.privateKey, forge.md.sha256.create());
    return new X509Certificate(forge.pki.certificateToPem(cert)).serialNumber;
  };

  // The random bytes that broke the old serial (`0` + hex: a redundant leading zero byte, "illegal padding").
  it.each([
    ['zero bytes first', [0x00, 0x00, 0x2d]],
    ['a zero byte, then a small one', [0x00, 0x05, 0xff]],
    ['a high byte first', [0x80, 0x00, 0x01]],
    ['all ones', [0xff, 0xff, 0xff]],
  ])('is a shortest-form positive INTEGER whatever the random bytes (%s)', (_name, head) => {
    const bytes = Buffer.concat([Buffer.from(head), Buffer.alloc(13, 0x42)]);
    const serial = certificateSerial(bytes);
    expect(serial).toHaveLength(32);
    const first = Number.parseInt(serial.slice(0, 2), 16);
    expect(first).toBeGreaterThanOrEqual(0x01);
    expect(first).toBeLessThanOrEqual(0x7f);
    expect(parses(serial).toLowerCase()).toBe(serial);
  });

  it('was broken before: forge writes the old form of such a serial with a zero byte OpenSSL refuses', () => {
    expect(() => parses(`0${Buffer.from([0x00, 0x05, ...Array(13).fill(0x42)]).toString('hex')}`)).toThrow(/illegal padding/);
  });
});
