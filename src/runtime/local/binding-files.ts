import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { BindingFiles } from '../runtime.ts';
import type { Identity } from './sandbox.ts';

/**
 * The service binding files of one incarnation or task (issue 9 §6), where Diego puts them: a sandbox binds the
 * host directory read-only at /etc/cf-service-bindings; without a sandbox the process gets the host path. The
 * directory lives in the incarnation's own scratch dir (removed with it), mode 0700 and owned by the app's uid
 * when it has one, files 0600: no other app's uid can read them, and no other sandbox binds them.
 *
 * Updates are atomic for a reader, the way the kubelet writes projected volumes (which servicebinding.io apps
 * expect): the whole tree is written into a fresh hidden `..<random>` directory, the `..data` symlink is renamed
 * onto it in one step, and the visible entries (`vcap_services`, or one directory per binding) are symlinks
 * through `..data`. A reader sees the old set or the new one, never half of each; the bind mount sees the swap
 * because the bound directory itself never changes. Nothing survives a crash of Kiln: the files are re-created
 * from the store when the instance is started again.
 */

export const SANDBOX_BINDINGS_DIR = '/etc/cf-service-bindings';
const DATA_LINK = '..data';

export class BindingFileSet {
  private hostDir: string | undefined;

  constructor(
    private files: BindingFiles,
    private readonly owner: Identity | undefined,
  ) {}

  get kind(): BindingFiles['kind'] {
    return this.files.kind;
  }

  /** Writes the files under `scratchDir` (after the scratch space was prepared). */
  install(scratchDir: string): void {
    this.hostDir = join(scratchDir, 'service-bindings');
    rmSync(this.hostDir, { recursive: true, force: true });
    mkdirSync(this.hostDir, { recursive: true, mode: 0o700 });
    this.own(this.hostDir, 0o700);
    this.write();
  }

  /**
   * Takes over the files of an adopted instance (see records.ts) in place: the directory stays (a sandbox binds
   * it) and the current files replace what it holds.
   */
  reattach(scratchDir: string): void {
    this.hostDir = join(scratchDir, 'service-bindings');
    mkdirSync(this.hostDir, { recursive: true, mode: 0o700 });
    this.write();
  }

  /** The host directory to bind read-only into a sandbox. */
  mounts(): Array<{ source: string; dest: string; writable: false }> {
    return this.hostDir ? [{ source: this.hostDir, dest: SANDBOX_BINDINGS_DIR, writable: false }] : [];
  }

  /** VCAP_SERVICES_FILE_PATH or SERVICE_BINDING_ROOT as the process sees it. */
  env(sandboxed: boolean): Record<string, string> {
    const root = sandboxed ? SANDBOX_BINDINGS_DIR : (this.hostDir ?? '');
    return this.files.kind === 'k8s' ? { SERVICE_BINDING_ROOT: root } : { VCAP_SERVICES_FILE_PATH: join(root, 'vcap_services') };
  }

  /**
   * Replaces the files in place. A set of the other kind is refused (false): the variable the process was started
   * with would point at the wrong thing; the feature change takes effect on restart, as in CF.
   */
  update(files: BindingFiles): boolean {
    if (files.kind !== this.files.kind) return false;
    if (sameFiles(files.files, this.files.files)) return true;
    this.files = files;
    this.write();
    return true;
  }

  private write(): void {
    const root = this.hostDir;
    if (!root) return;
    const version = `..${new Date().toISOString().replace(/[:.]/g, '_')}.${randomBytes(4).toString('hex')}`;
    const data = join(root, version);
    mkdirSync(data, { mode: 0o700 });
    this.own(data, 0o700);
    const top = new Set<string>();
    for (const [rel, content] of Object.entries(this.files.files)) {
      const path = join(data, rel);
      if (!path.startsWith(`${data}/`)) continue; // never outside the tree (names are checked upstream too)
      top.add(rel.split('/')[0]!);
      for (let d = dirname(path); d !== data && d.startsWith(`${data}/`); d = dirname(d)) {
        mkdirSync(d, { recursive: true, mode: 0o700 });
        this.own(d, 0o700);
      }
      writeFileSync(path, content, { mode: 0o600 });
      this.own(path, 0o600);
    }
    replaceSymlink(root, DATA_LINK, version);
    for (const name of top) replaceSymlink(root, name, join(DATA_LINK, name));
    for (const entry of readdirSync(root)) {
      if (entry === DATA_LINK || entry === version || top.has(entry)) continue;
      // Older versions and entries of bindings that are gone.
      rmSync(join(root, entry), { recursive: true, force: true });
    }
  }

  private own(path: string, mode: number): void {
    chmodSync(path, mode);
    // Only root can give a file away; without it the file stays Kiln's, which is then the app's uid too.
    if (this.owner && process.getuid?.() === 0) chownSync(path, this.owner.uid, this.owner.gid);
  }
}

/** Points `dir/name` at `target` in one rename (a reader never finds it missing). */
function replaceSymlink(dir: string, name: string, target: string): void {
  const path = join(dir, name);
  try {
    if (lstatSync(path).isDirectory()) rmSync(path, { recursive: true, force: true });
  } catch {
    // absent
  }
  const tmp = join(dir, `..tmp.${randomBytes(6).toString('hex')}`);
  symlinkSync(target, tmp);
  renameSync(tmp, path);
}

function sameFiles(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && b[k] === a[k]);
}
