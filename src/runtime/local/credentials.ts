import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeAtomic, type CredentialIssuer, type InstanceSubject, type IssuedCredential } from '../../identity/instance-identity.ts';
import type { Identity } from './sandbox.ts';

/**
 * The instance identity files of one incarnation or task, where Diego puts them: `instance.crt` (leaf + CA)
 * and `instance.key` in `/etc/cf-instance-credentials` (CF_INSTANCE_CERT, CF_INSTANCE_KEY), and the CA that
 * signs Kiln's router certificates in `/etc/cf-system-certificates` (CF_SYSTEM_CERT_PATH). On the host they
 * live in the incarnation's scratch dir (removed with it); a sandbox binds them read-only and sees nothing else
 * of the CA (its key stays in the data dir). Before a credential expires (at three quarters of its lifetime)
 * a new one replaces the files by rename, so a reader never sees half a file and the bind shows the new one.
 */

export const SANDBOX_CREDENTIALS_DIR = '/etc/cf-instance-credentials';
export const SANDBOX_SYSTEM_CERTS_DIR = '/etc/cf-system-certificates';

/** How long before the end of its lifetime a credential is replaced (a quarter of the lifetime). */
export const renewDelayMs = (cred: Pick<IssuedCredential, 'notAfter'>, lifetimeMs: number, now = Date.now()): number =>
  Math.max(1_000, cred.notAfter.getTime() - now - lifetimeMs / 4);

export class InstanceCredentialFiles {
  private hostDir: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  private constructor(
    private readonly issuer: CredentialIssuer,
    private readonly subject: InstanceSubject,
    private readonly owner: Identity | undefined,
    private current: IssuedCredential,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Issues the first credential (before the process exists, so it starts with one). */
  static async issue(
    issuer: CredentialIssuer,
    subject: InstanceSubject,
    owner: Identity | undefined,
    onError: (err: unknown) => void = () => undefined,
  ): Promise<InstanceCredentialFiles> {
    return new InstanceCredentialFiles(issuer, subject, owner, await issuer.issue(subject), onError);
  }

  get credential(): IssuedCredential {
    return this.current;
  }

  /** Writes the files under `scratchDir` (after the scratch space was prepared) and starts renewing them. */
  install(scratchDir: string): void {
    this.hostDir = scratchDir;
    for (const sub of ['credentials', 'system-certs']) mkdirSync(join(scratchDir, sub), { recursive: true, mode: 0o755 });
    this.write();
    this.schedule();
  }

  /** Host directories to bind read-only into a sandbox at Diego's paths. */
  mounts(): Array<{ source: string; dest: string; writable: false }> {
    if (!this.hostDir) return [];
    return [
      { source: join(this.hostDir, 'credentials'), dest: SANDBOX_CREDENTIALS_DIR, writable: false },
      { source: join(this.hostDir, 'system-certs'), dest: SANDBOX_SYSTEM_CERTS_DIR, writable: false },
    ];
  }

  /** CF_INSTANCE_CERT / CF_INSTANCE_KEY / CF_SYSTEM_CERT_PATH as the process sees them. */
  env(sandboxed: boolean): Record<string, string> {
    const creds = sandboxed ? SANDBOX_CREDENTIALS_DIR : join(this.hostDir ?? '', 'credentials');
    const system = sandboxed ? SANDBOX_SYSTEM_CERTS_DIR : join(this.hostDir ?? '', 'system-certs');
    return {
      CF_INSTANCE_CERT: join(creds, 'instance.crt'),
      CF_INSTANCE_KEY: join(creds, 'instance.key'),
      CF_SYSTEM_CERT_PATH: system,
    };
  }

  /** Replaces the credential now (renewal; tests). */
  async renew(): Promise<void> {
    if (this.stopped) return;
    const next = await this.issuer.issue(this.subject);
    if (this.stopped) return;
    this.current = next;
    this.write();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private write(): void {
    if (!this.hostDir) return;
    const creds = join(this.hostDir, 'credentials');
    // The key is the app's own (its uid when it has one) and nobody else's.
    writeAtomic(join(creds, 'instance.key'), this.current.keyPem, 0o600, this.owner);
    writeAtomic(join(creds, 'instance.crt'), this.current.certPem, 0o644, this.owner);
    writeAtomic(join(this.hostDir, 'system-certs', 'kiln-ca.crt'), this.current.caCertPem, 0o644);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.renew()
        .catch((err) => this.onError(err))
        .finally(() => this.schedule());
    }, renewDelayMs(this.current, this.current.lifetimeMs));
    this.timer.unref();
  }
}
