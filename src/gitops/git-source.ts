import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/**
 * Git sources without Kubernetes: the machine's `git` (spawned with an argument list, never a shell) keeps one
 * bare mirror per repository URL under `<cacheDir>/mirrors/`, fetches it to resolve a ref (a branch, a tag or a
 * commit) to a commit, and checks a commit's tree out once into `<cacheDir>/trees/<url-hash>/<commit>` — a
 * cache by commit: a second deploy of the same commit reads the tree already on disk.
 *
 * Credentials never appear in a URL, an argument list or the mirror's config: HTTP(S) ones travel as an
 * `Authorization` header through git's `GIT_CONFIG_*` environment, an SSH key as a 0600 file named by
 * `GIT_SSH_COMMAND` for the one command that needs it. Callers obtain them by reference (a Kubernetes Secret,
 * or a named entry of `KILN_GIT_CREDENTIALS_FILE`; see credentials.ts).
 */
export interface GitCredentials {
  username?: string;
  password?: string;
  /** An SSH private key (PEM/OpenSSH text), for ssh:// and scp-like URLs. */
  sshPrivateKey?: string;
}

export interface GitSourceCacheOptions {
  cacheDir: string;
  /** The git binary; `git` on PATH by default. */
  git?: string;
  /** A git command running longer than this is killed (default 5 minutes). */
  timeoutMs?: number;
  /**
   * Whether `file://` URLs and paths on Kiln's machine may be cloned (KILN_GIT_ALLOW_LOCAL). Off by default: whoever
   * may declare an App's source would otherwise read any repository on the machine Kiln runs on.
   */
  allowLocal?: boolean;
}

export class GitError extends Error {
  constructor(
    message: string,
    readonly stderr = '',
  ) {
    super(message);
    this.name = 'GitError';
  }
}

const FULL_SHA = /^[0-9a-f]{40}$/;

export const urlKey = (url: string) => createHash('sha256').update(url).digest('hex').slice(0, 16);

/** What a URL names, for messages: the user info (if anyone wrote some in) is cut out. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, '$1***@');
}

export class GitSourceCache {
  private readonly git: string;
  private readonly timeoutMs: number;
  /** One git operation per mirror at a time. */
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(private readonly opts: GitSourceCacheOptions) {
    this.git = opts.git ?? 'git';
    this.timeoutMs = opts.timeoutMs ?? 300_000;
  }

  private mirrorDir(url: string) {
    return path.join(this.opts.cacheDir, 'mirrors', `${urlKey(url)}.git`);
  }

  /** Fetches the repository and resolves `ref` (branch, tag, full or abbreviated commit; HEAD when empty). */
  async resolve(url: string, ref: string | undefined, creds?: GitCredentials): Promise<string> {
    validateUrl(url, this.opts.allowLocal ?? false);
    return this.serial(url, async () => {
      const mirror = await this.fetchMirror(url, creds);
      const wanted = ref?.trim() || 'HEAD';
      const candidates = wanted === 'HEAD' ? ['HEAD'] : [`refs/heads/${wanted}`, `refs/tags/${wanted}`, wanted];
      for (const c of candidates) {
        if (c.startsWith('-')) continue;
        const out = await this.run(['--git-dir', mirror, 'rev-parse', '--verify', '--quiet', `${c}^{commit}`], { allowFail: true });
        if (out.code === 0 && FULL_SHA.test(out.stdout.trim())) return out.stdout.trim();
      }
      throw new GitError(`ref ${wanted} names no branch, tag or commit in ${redactUrl(url)}`);
    });
  }

  /**
   * The tree of `commit` on disk (checked out once; later calls return the cached directory). `resolve` must
   * have fetched the repository first, in this process or an earlier one.
   */
  async checkout(url: string, commit: string, creds?: GitCredentials): Promise<string> {
    if (!FULL_SHA.test(commit)) throw new GitError(`not a full commit hash: ${commit}`);
    const dest = path.join(this.opts.cacheDir, 'trees', urlKey(url), commit);
    if (await exists(dest)) return dest;
    return this.serial(url, async () => {
      if (await exists(dest)) return dest;
      let mirror = this.mirrorDir(url);
      if (!(await exists(mirror))) mirror = await this.fetchMirror(url, creds);
      await fs.mkdir(path.dirname(dest), { recursive: true });
      const tmp = `${dest}.tmp-${randomBytes(4).toString('hex')}`;
      await fs.mkdir(tmp, { recursive: true });
      const index = path.join(tmp, '..', `.index-${path.basename(tmp)}`);
      try {
        const env = { GIT_INDEX_FILE: index };
        await this.run(['--git-dir', mirror, 'read-tree', commit], { env });
        await this.run(['--git-dir', mirror, '--work-tree', tmp, 'checkout-index', '--all', '--force'], { env });
        await fs.rename(tmp, dest);
      } catch (err) {
        await fs.rm(tmp, { recursive: true, force: true });
        throw err;
      } finally {
        await fs.rm(index, { force: true });
      }
      return dest;
    });
  }

  /** `path` inside a checked-out tree; one that leaves the tree (`..`, absolute) or does not exist is refused. */
  async subdir(tree: string, sub: string | undefined): Promise<string> {
    const rel = (sub ?? '.').replace(/^\/+/, '') || '.';
    const dir = path.resolve(tree, rel);
    if (dir !== tree && !dir.startsWith(tree + path.sep)) throw new GitError(`path ${sub} leaves the repository`);
    const real = await fs.realpath(dir).catch(() => undefined);
    if (!real) throw new GitError(`path ${sub} does not exist in the repository`);
    const realTree = await fs.realpath(tree);
    if (real !== realTree && !real.startsWith(realTree + path.sep)) throw new GitError(`path ${sub} leaves the repository`);
    if (!(await fs.stat(real)).isDirectory()) throw new GitError(`path ${sub} is not a directory`);
    return real;
  }

  private async fetchMirror(url: string, creds?: GitCredentials): Promise<string> {
    const mirror = this.mirrorDir(url);
    await withCredentials(creds, async (env, config) => {
      if (!(await exists(mirror))) {
        await fs.mkdir(path.dirname(mirror), { recursive: true });
        const tmp = `${mirror}.tmp-${randomBytes(4).toString('hex')}`;
        try {
          await this.run([...config, 'clone', '--mirror', '--quiet', '--', url, tmp], { env });
          await fs.rename(tmp, mirror);
        } catch (err) {
          await fs.rm(tmp, { recursive: true, force: true });
          throw err;
        }
        return;
      }
      await this.run([...config, '--git-dir', mirror, 'fetch', '--prune', '--quiet', 'origin'], { env });
      // The remote's default branch may have moved.
      await this.run(['--git-dir', mirror, 'remote', 'set-head', 'origin', '--auto'], { env, allowFail: true });
    });
    return mirror;
  }

  private serial<T>(url: string, fn: () => Promise<T>): Promise<T> {
    const key = urlKey(url);
    const prev = this.locks.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const settled = next.catch(() => {});
    this.locks.set(key, settled);
    void settled.then(() => {
      if (this.locks.get(key) === settled) this.locks.delete(key);
    });
    return next;
  }

  private run(args: string[], o: { env?: Record<string, string>; allowFail?: boolean } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.git, args, {
        shell: false,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? os.tmpdir(), GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: 'true', LC_ALL: 'C', ...o.env },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => {
        if (stderr.length < 8192) stderr += d.toString();
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), this.timeoutMs);
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(new GitError(`cannot run ${this.git}: ${err.message}`));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const c = code ?? -1;
        if (c !== 0 && !o.allowFail) {
          const what = args.find((a) => !a.startsWith('-') && !a.includes('=') && !a.includes('/')) ?? 'git';
          const why = signal ? `killed (${signal})` : stderr.trim().split('\n').slice(-2).join('; ') || `exit ${c}`;
          reject(new GitError(`git ${what} failed: ${why}`, stderr));
          return;
        }
        resolve({ code: c, stdout, stderr });
      });
    });
  }
}

function validateUrl(url: string, allowLocal: boolean) {
  if (url.startsWith('-')) throw new GitError('a repository URL may not start with "-"');
  // Remote means a network transport or scp-like `user@host:path`; anything else (file://, a path) is this machine.
  const remote = /^(https?|ssh|git):\/\//i.test(url) || /^[^/@:\s]+@[^/:\s]+:/.test(url);
  if (!remote && !allowLocal) throw new GitError('repositories on Kiln\'s own machine (file:// URLs and paths) are not allowed; use an https, ssh or git URL (KILN_GIT_ALLOW_LOCAL=true allows them)');
  if (/^[a-z][a-z0-9+.-]*:\/\/[^/@]*:[^/@]*@/i.test(url)) throw new GitError('credentials may not be written into the URL; reference them (secretRef / credentials)');
  if (/^ext::/i.test(url)) throw new GitError('the ext:: transport is not allowed');
}

/** Environment (and `-c` options) carrying credentials for one git command; an SSH key lives in a temp file meanwhile. */
async function withCredentials<T>(creds: GitCredentials | undefined, fn: (env: Record<string, string>, config: string[]) => Promise<T>): Promise<T> {
  const env: Record<string, string> = { GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'protocol.ext.allow', GIT_CONFIG_VALUE_0: 'never' };
  if (creds?.username !== undefined || creds?.password !== undefined) {
    const basic = Buffer.from(`${creds.username ?? ''}:${creds.password ?? ''}`).toString('base64');
    Object.assign(env, { GIT_CONFIG_COUNT: '2', GIT_CONFIG_KEY_1: 'http.extraHeader', GIT_CONFIG_VALUE_1: `Authorization: Basic ${basic}` });
  }
  if (!creds?.sshPrivateKey) return fn(env, []);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-git-key-'));
  const key = path.join(dir, 'id');
  try {
    await fs.writeFile(key, creds.sshPrivateKey.endsWith('\n') ? creds.sshPrivateKey : `${creds.sshPrivateKey}\n`, { mode: 0o600 });
    env.GIT_SSH_COMMAND = `ssh -i '${key}' -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new -o BatchMode=yes`;
    return await fn(env, []);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(
    () => true,
    () => false,
  );
}
