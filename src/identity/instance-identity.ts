import { createPrivateKey, generateKeyPair, randomBytes, sign, X509Certificate } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import forge from 'node-forge';

/**
 * Diego-style instance identity (issue 12 item 17): every instance and task gets a short-lived X.509 client
 * certificate whose subject names its app, space and org (`OU=app:<guid>`, `OU=space:<guid>`,
 * `OU=organization:<guid>`, `CN=<instance guid>`), signed by a CA kept in Kiln's data dir. The router's mTLS
 * listener verifies callers against that CA and reads the OUs to check route policies, as gorouter does.
 *
 * Node 20 can verify certificates (`X509Certificate`, TLS) but cannot create them, so the certificate
 * structure is built with node-forge (dependency-free) while keys are generated and certificates signed by
 * node's own crypto (forge's pure-JS RSA signing would block the event loop ~100 ms per certificate). The CA
 * key is RSA-2048 (made once); leaf keys are EC P-256, which node generates in about a millisecond.
 *
 * The CA key is written 0600 in `<dataDir>/instance-identity/` (0700), a directory no sandbox binds. A restart
 * keeps the CA (so credentials issued before stay valid until they expire); deleting the directory rotates it.
 */

const generateKeyPairAsync = promisify(generateKeyPair);

/** Default lifetime of an instance credential; Diego's default is 24 h, renewed before it runs out. */
export const DEFAULT_CREDENTIAL_LIFETIME_MS = 24 * 60 * 60 * 1000;
const CA_LIFETIME_MS = 10 * 365 * 24 * 60 * 60 * 1000;
/** Certificates start a little in the past so a caller whose clock lags by seconds still accepts them. */
const BACKDATE_MS = 5 * 60 * 1000;

export interface InstanceSubject {
  appGuid: string;
  spaceGuid?: string;
  organizationGuid?: string;
  /** CF_INSTANCE_GUID: the certificate's common name and a DNS SAN, as Diego issues it. */
  instanceGuid: string;
  /** CF_INSTANCE_IP, as an IP SAN. */
  ip?: string;
}

export interface IssuedCredential {
  /** The leaf certificate followed by the CA certificate (PEM), as Diego's CF_INSTANCE_CERT carries its chain. */
  certPem: string;
  /** PKCS#8 PEM private key of the leaf. */
  keyPem: string;
  notBefore: Date;
  notAfter: Date;
  /** The issuing CA (PEM), which also signs the router's certificates: apps trust it (CF_SYSTEM_CERT_PATH). */
  caCertPem: string;
  /** The lifetime the credential was issued for; it is renewed at three quarters of it. */
  lifetimeMs: number;
}

/** Issues credentials; the runtime depends on this, not on the CA itself. */
export interface CredentialIssuer {
  issue(subject: InstanceSubject): Promise<IssuedCredential>;
}

interface KeyPair {
  publicKeyPem: string;
  privateKeyPem: string;
}

async function newRsaKey(): Promise<KeyPair> {
  const { publicKey, privateKey } = await generateKeyPairAsync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { publicKeyPem: publicKey, privateKeyPem: privateKey };
}

/**
 * A leaf key: EC P-256, generated in about a millisecond (an RSA-2048 key takes ~0.1 s, seconds on a loaded
 * machine, and every instance start would wait for one).
 */
async function newEcKey(): Promise<{ privateKeyPem: string; spkiDer: Buffer }> {
  const { publicKey, privateKey } = await generateKeyPairAsync('ec', {
    namedCurve: 'prime256v1',
    publicKeyEncoding: { type: 'spki', format: 'der' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { privateKeyPem: privateKey, spkiDer: publicKey };
}

/**
 * A random positive serial of 16 bytes, in hex as forge takes it. DER wants an INTEGER's shortest encoding, which
 * OpenSSL enforces when it parses a certificate ("asn1 encoding routines::illegal padding"): the first byte is kept
 * in 0x01–0x7f, so the number is positive without a leading zero byte and never starts with a redundant one. (The
 * previous `0` + 15 random bytes made forge emit a zero byte first, redundant whenever the next byte was below
 * 0x80 and itself zero — about one certificate in 500, seen as a restarted Kiln whose mTLS listener never started.)
 */
export function certificateSerial(bytes: Uint8Array = randomBytes(16)): string {
  const b = Buffer.from(bytes);
  b[0] = b[0]! & 0x7f || 0x01;
  return b.toString('hex');
}

/** Signs the certificate's TBS part with node's crypto (sha256WithRSAEncryption) and returns its PEM. */
function signWithNode(cert: forge.pki.Certificate, signerKeyPem: string): string {
  const oid = forge.pki.oids.sha256WithRSAEncryption!;
  cert.signatureOid = oid;
  cert.siginfo.algorithmOid = oid;
  // getTBSCertificate is public API of forge's pki module, missing from @types/node-forge.
  const pki = forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 };
  const tbs = forge.asn1.toDer(pki.getTBSCertificate(cert)).getBytes();
  cert.signature = sign('sha256', Buffer.from(tbs, 'binary'), signerKeyPem).toString('binary');
  return forge.pki.certificateToPem(cert);
}

function baseCertificate(publicKeyPem: string, notBefore: Date, notAfter: Date): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKeyPem);
  cert.serialNumber = certificateSerial();
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  return cert;
}

/**
 * Each CA gets a name of its own: a certificate of another Kiln's CA then never even looks like one of ours to
 * OpenSSL (same issuer name is what makes it try, and fail, the signature; node has been seen to leave that
 * failure in OpenSSL's error queue, where the next handshake trips over it).
 */
const caSubject = () => [
  { shortName: 'O', value: 'Kiln' },
  { shortName: 'CN', value: `Kiln instance identity CA ${randomBytes(6).toString('hex')}` },
];

export class InstanceIdentityCA implements CredentialIssuer {
  private readonly caCert: forge.pki.Certificate;
  /** Names the CA in every leaf (authorityKeyIdentifier), so verifiers pick the issuer by key, not only by name. */
  private readonly caKeyId: string;

  private constructor(
    readonly caCertPem: string,
    private readonly caKeyPem: string,
    readonly lifetimeMs: number,
  ) {
    this.caCert = forge.pki.certificateFromPem(caCertPem);
    this.caKeyId = this.caCert.generateSubjectKeyIdentifier().getBytes();
  }

  /** Loads the CA from `dir`, creating it (key 0600, dir 0700) on first use. */
  static async open(dir: string, opts: { lifetimeMs?: number } = {}): Promise<InstanceIdentityCA> {
    const lifetimeMs = opts.lifetimeMs ?? DEFAULT_CREDENTIAL_LIFETIME_MS;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    const keyPath = join(dir, 'ca.key');
    const certPath = join(dir, 'ca.crt');
    if (existsSync(keyPath) && existsSync(certPath)) {
      const certPem = readFileSync(certPath, 'utf8');
      const keyPem = readFileSync(keyPath, 'utf8');
      // A CA near its end is replaced rather than issuing credentials it cannot cover.
      if (new Date(new X509Certificate(certPem).validTo).getTime() - Date.now() > lifetimeMs * 2) {
        chmodSync(keyPath, 0o600);
        return new InstanceIdentityCA(certPem, keyPem, lifetimeMs);
      }
    }
    const keys = await newRsaKey();
    const now = Date.now();
    const cert = baseCertificate(keys.publicKeyPem, new Date(now - BACKDATE_MS), new Date(now + CA_LIFETIME_MS));
    const subject = caSubject();
    cert.setSubject(subject);
    cert.setIssuer(subject);
    cert.setExtensions([
      { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
      { name: 'subjectKeyIdentifier' },
    ]);
    const certPem = signWithNode(cert, keys.privateKeyPem);
    // Key first and atomically: a crash in between leaves no certificate without its key.
    writeAtomic(keyPath, keys.privateKeyPem, 0o600);
    writeAtomic(certPath, certPem, 0o644);
    return new InstanceIdentityCA(certPem, keys.privateKeyPem, lifetimeMs);
  }

  /** An instance identity credential: client and server auth, like Diego's (its proxy serves with it too). */
  async issue(subject: InstanceSubject): Promise<IssuedCredential> {
    const keys = await newEcKey();
    const now = Date.now();
    const notBefore = new Date(now - BACKDATE_MS);
    const notAfter = new Date(now + this.lifetimeMs);
    const cert = this.leafTemplate(notBefore, notAfter);
    const name: forge.pki.CertificateField[] = [];
    if (subject.organizationGuid) name.push({ shortName: 'OU', value: `organization:${subject.organizationGuid}` });
    if (subject.spaceGuid) name.push({ shortName: 'OU', value: `space:${subject.spaceGuid}` });
    name.push({ shortName: 'OU', value: `app:${subject.appGuid}` });
    name.push({ shortName: 'CN', value: subject.instanceGuid });
    cert.setSubject(name);
    cert.setIssuer(this.caCert.subject.attributes);
    const altNames: Array<{ type: number; value?: string; ip?: string }> = [{ type: 2, value: subject.instanceGuid }];
    if (subject.ip && isIP(subject.ip)) altNames.push({ type: 7, ip: subject.ip });
    cert.setExtensions([
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', clientAuth: true, serverAuth: true },
      { name: 'subjectAltName', altNames },
      { name: 'authorityKeyIdentifier', keyIdentifier: this.caKeyId },
    ]);
    const leaf = this.signLeaf(cert, keys.spkiDer);
    return { certPem: leaf + this.caCertPem, keyPem: keys.privateKeyPem, notBefore, notAfter, caCertPem: this.caCertPem, lifetimeMs: this.lifetimeMs };
  }

  /** A server certificate for the router's mTLS listener, for the given host names and IPs (SNI). */
  async serverCredential(names: string[]): Promise<{ certPem: string; keyPem: string; notAfter: Date }> {
    const keys = await newEcKey();
    const now = Date.now();
    const notAfter = new Date(now + this.lifetimeMs);
    const cert = this.leafTemplate(new Date(now - BACKDATE_MS), notAfter);
    cert.setSubject([{ shortName: 'O', value: 'Kiln' }, { shortName: 'CN', value: names[0] ?? 'localhost' }]);
    cert.setIssuer(this.caCert.subject.attributes);
    cert.setExtensions([
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: names.map((n) => (isIP(n) ? { type: 7, ip: n } : { type: 2, value: n })) },
      { name: 'authorityKeyIdentifier', keyIdentifier: this.caKeyId },
    ]);
    return { certPem: this.signLeaf(cert, keys.spkiDer) + this.caCertPem, keyPem: keys.privateKeyPem, notAfter };
  }

  /** A leaf to be: its public key is filled in by signLeaf (forge itself only encodes RSA keys). */
  private leafTemplate(notBefore: Date, notAfter: Date): forge.pki.Certificate {
    const cert = forge.pki.createCertificate();
    cert.publicKey = this.caCert.publicKey;
    cert.serialNumber = certificateSerial();
    cert.validity.notBefore = notBefore;
    cert.validity.notAfter = notAfter;
    return cert;
  }

  /**
   * Signs a leaf whose key is an EC P-256 key: forge builds the TBSCertificate (with the CA's RSA key standing in),
   * the stand-in SubjectPublicKeyInfo is swapped for the leaf's own (DER from node), node signs it with the CA's
   * RSA key, and the Certificate SEQUENCE is assembled here (RFC 5280 §4.1).
   */
  private signLeaf(cert: forge.pki.Certificate, spkiDer: Buffer): string {
    const { asn1 } = forge;
    const oid = forge.pki.oids.sha256WithRSAEncryption!;
    cert.signatureOid = oid;
    cert.siginfo.algorithmOid = oid;
    const pki = forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 };
    const tbs = pki.getTBSCertificate(cert);
    const standIn = asn1.toDer(forge.pki.publicKeyToAsn1(cert.publicKey)).getBytes();
    const fields = tbs.value as forge.asn1.Asn1[];
    const at = fields.findIndex((f) => asn1.toDer(f).getBytes() === standIn);
    if (at < 0) throw new Error('certificate template has no public key to replace');
    fields[at] = asn1.fromDer(forge.util.createBuffer(spkiDer.toString('binary')));
    const tbsDer = asn1.toDer(tbs).getBytes();
    const signature = sign('sha256', Buffer.from(tbsDer, 'binary'), this.caKeyPem).toString('binary');
    const certificate = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
      tbs,
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
        asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(oid).getBytes()),
        asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, ''),
      ]),
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, String.fromCharCode(0) + signature),
    ]);
    return forge.pem.encode({ type: 'CERTIFICATE', body: asn1.toDer(certificate).getBytes() });
  }

  /** The CA's private key is never handed out; this only proves the pair matches (tests). */
  keyMatchesCertificate(): boolean {
    return new X509Certificate(this.caCertPem).checkPrivateKey(createPrivateKey(this.caKeyPem));
  }
}

/**
 * The CA, opened (and on a first start created, which generates an RSA key) only when something needs it: an
 * instance or task to start, or the router's mTLS listener. A Kiln that runs neither (API tests) never pays for it.
 */
export class LazyInstanceIdentityCA implements CredentialIssuer {
  private opened: Promise<InstanceIdentityCA> | undefined;

  constructor(
    private readonly dir: string,
    private readonly opts: { lifetimeMs?: number } = {},
  ) {}

  get(): Promise<InstanceIdentityCA> {
    if (!this.opened) {
      const opening = InstanceIdentityCA.open(this.dir, this.opts);
      this.opened = opening;
      // A failed open (disk full) is retried by the next caller rather than remembered.
      opening.catch(() => {
        if (this.opened === opening) this.opened = undefined;
      });
    }
    return this.opened;
  }

  async issue(subject: InstanceSubject): Promise<IssuedCredential> {
    return (await this.get()).issue(subject);
  }
}

/** Writes through a temporary file and a rename, so a reader never sees half a file (also during renewal). */
export function writeAtomic(path: string, content: string, mode: number, owner?: { uid: number; gid: number }): void {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(tmp, content, { mode });
  chmodSync(tmp, mode);
  // Only root can give a file away; without it the file stays Kiln's, which is then the app's uid too.
  if (owner && process.getuid?.() === 0) chownSync(tmp, owner.uid, owner.gid);
  renameSync(tmp, path);
}
