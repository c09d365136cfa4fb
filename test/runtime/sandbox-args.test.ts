import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { sandboxPasswd } from '../../src/runtime/local/launch.ts';
import { bwrapArgs, resolveSandbox, type Sandbox, type SandboxSpec } from '../../src/runtime/local/sandbox.ts';

const sandbox: Extract<Sandbox, { kind: 'bwrap' }> = {
  kind: 'bwrap',
  bwrapPath: '/usr/bin/bwrap',
  setprivPath: '/usr/bin/setpriv',
  system: [
    { kind: 'bind', path: '/usr' },
    { kind: 'symlink', path: '/bin', target: 'usr/bin' },
    { kind: 'bind', path: '/etc/resolv.conf' },
    { kind: 'bind', path: '/etc/ssl' },
  ],
};

const spec: SandboxSpec = {
  mounts: [
    { source: '/data/droplets/d1/app', dest: '/home/vcap/app', writable: false },
    { source: '/data/droplets/d1/deps', dest: '/home/vcap/deps', writable: false },
  ],
  scratch: [{ dest: '/tmp', sizeBytes: 1024 * 1024 }, { dest: '/home/vcap' }],
  dirs: ['/home/vcap/tmp'],
  cwd: '/home/vcap/app',
  hostname: 'web-0',
  argv: ['/bin/sh', '-c', 'exec node server.js'],
};

/** The values following each occurrence of `flag`. */
function after(args: string[], flag: string, count = 1): string[][] {
  const out: string[][] = [];
  args.forEach((a, i) => {
    if (a === flag) out.push(args.slice(i + 1, i + 1 + count));
  });
  return out;
}

describe('bwrap argument builder', () => {
  it('unshares PID, IPC and UTS namespaces and dies with Kiln', () => {
    const args = bwrapArgs(sandbox, spec);
    for (const flag of ['--unshare-pid', '--unshare-ipc', '--unshare-uts', '--die-with-parent']) expect(args).toContain(flag);
    // An instance a restarted Kiln adopts outlives it.
    expect(bwrapArgs(sandbox, { ...spec, outliveParent: true })).not.toContain('--die-with-parent');
    expect(after(args, '--proc')).toEqual([['/proc']]);
    expect(after(args, '--hostname')).toEqual([['web-0']]);
  });

  it('binds the system read-only and recreates merged-/usr links', () => {
    const args = bwrapArgs(sandbox, spec);
    expect(after(args, '--ro-bind', 2)).toEqual(
      expect.arrayContaining([
        ['/usr', '/usr'],
        ['/etc/resolv.conf', '/etc/resolv.conf'],
        ['/etc/ssl', '/etc/ssl'],
      ]),
    );
    expect(after(args, '--symlink', 2)).toEqual([['usr/bin', '/bin']]);
    // Nothing is bound writable except what the spec asks for.
    expect(after(args, '--bind', 2)).toEqual([]);
  });

  it('binds only the droplet, read-only, over private scratch space with a size cap', () => {
    const args = bwrapArgs(sandbox, spec);
    expect(after(args, '--ro-bind', 2)).toEqual(
      expect.arrayContaining([
        ['/data/droplets/d1/app', '/home/vcap/app'],
        ['/data/droplets/d1/deps', '/home/vcap/deps'],
      ]),
    );
    expect(args.some((a) => a === '/data' || a === '/data/droplets')).toBe(false);
    // The HOME tmpfs is mounted before the droplet parts that sit inside it.
    expect(args.indexOf('/home/vcap')).toBeLessThan(args.indexOf('/home/vcap/app'));
    expect(args.slice(args.indexOf('--size'), args.indexOf('--size') + 3)).toEqual(['--size', '1048576', '--tmpfs']);
    expect(after(args, '--chdir')).toEqual([['/home/vcap/app']]);
  });

  it('creates mount-point parents world-readable before bwrap would make them private', () => {
    const args = bwrapArgs(sandbox, spec);
    const etc = args.indexOf('/etc');
    expect(args.slice(etc - 3, etc + 1)).toEqual(['--perms', '0755', '--dir', '/etc']);
    expect(etc).toBeLessThan(args.indexOf('/etc/resolv.conf'));
  });

  it('runs the command last, after the end of bwrap options, without switching uid when none is given', () => {
    const args = bwrapArgs(sandbox, spec);
    expect(args.slice(-4)).toEqual(['--', '/bin/sh', '-c', 'exec node server.js']);
    expect(args).not.toContain('/usr/bin/setpriv');
    // Every capability is dropped, even when bwrap runs privileged without a uid to switch to.
    expect(after(args, '--cap-drop')).toEqual([['ALL']]);
    expect(args).not.toContain('--cap-add');
  });

  it('drops to the app uid with setpriv, keeping only the capabilities setpriv needs', () => {
    const args = bwrapArgs(sandbox, { ...spec, identity: { uid: 200_001, gid: 200_001 } });
    expect(after(args, '--cap-drop')).toEqual([['ALL']]);
    expect(after(args, '--cap-add')).toEqual([['CAP_SETUID'], ['CAP_SETGID']]);
    const setpriv = args.indexOf('/usr/bin/setpriv');
    expect(args.slice(setpriv - 1, setpriv + 7)).toEqual([
      '--',
      '/usr/bin/setpriv',
      '--reuid=200001',
      '--regid=200001',
      '--clear-groups',
      '--inh-caps=-all',
      '--',
      '/bin/sh',
    ]);
  });

  it('refuses to run an app as uid or gid 0', () => {
    expect(() => bwrapArgs(sandbox, { ...spec, identity: { uid: 0, gid: 200_001 } })).toThrow(/never run as uid or gid 0/);
    expect(() => bwrapArgs(sandbox, { ...spec, identity: { uid: 200_001, gid: 0 } })).toThrow(/never run as uid or gid 0/);
  });

  it('caps file size at the disk quota with prlimit, before dropping to the app uid', () => {
    const args = bwrapArgs({ ...sandbox, prlimitPath: '/usr/bin/prlimit' }, { ...spec, maxFileBytes: 1024, identity: { uid: 200_001, gid: 200_001 } });
    const prlimit = args.indexOf('/usr/bin/prlimit');
    expect(args.slice(prlimit, prlimit + 4)).toEqual(['/usr/bin/prlimit', '--fsize=1024', '--core=0', '--']);
    expect(prlimit).toBeLessThan(args.indexOf('/usr/bin/setpriv'));
    // Without prlimit installed the limit is skipped, not the app.
    expect(bwrapArgs(sandbox, { ...spec, maxFileBytes: 1024 })).not.toContain('--fsize=1024');
  });

  it('holds the sandbox on a block fd when asked (to join a cgroup first)', () => {
    const args = bwrapArgs(sandbox, { ...spec, blockFd: 3 });
    expect(after(args, '--block-fd')).toEqual([['3']]);
    expect(args.indexOf('--block-fd')).toBeLessThan(args.indexOf('--'));
  });
});

describe('KILN_SANDBOX', () => {
  const none = () => undefined;
  const found = (candidates: readonly string[]) => candidates[0];
  const works = () => true;

  it('defaults to auto', () => {
    expect(loadConfig({}).sandbox).toBe('auto');
    expect(() => loadConfig({ KILN_SANDBOX: 'maybe' })).toThrow(/KILN_SANDBOX/);
  });

  it('adopts instances after a restart by default (SQLite only, see create-runtime.ts); false turns it off', () => {
    expect(loadConfig({}).adoptInstances).toBe(true);
    expect(loadConfig({ KILN_ADOPT_INSTANCES: 'false' }).adoptInstances).toBe(false);
    expect(() => loadConfig({ KILN_ADOPT_INSTANCES: 'yes' })).toThrow(/KILN_ADOPT_INSTANCES/);
  });

  it('auto uses bubblewrap when installed and runs apps unsandboxed when not', () => {
    expect(resolveSandbox('auto', { find: found, isRoot: false, works })).toMatchObject({ kind: 'bwrap', bwrapPath: '/usr/bin/bwrap', setprivPath: undefined });
    expect(resolveSandbox('auto', { find: none })).toEqual({ kind: 'none' });
  });

  it('bwrap refuses to start without bubblewrap', () => {
    expect(() => resolveSandbox('bwrap', { find: none })).toThrow(/apt-get install bubblewrap/);
  });

  it('auto falls back and bwrap refuses when bubblewrap is installed but cannot create namespaces', () => {
    const broken = () => false;
    expect(resolveSandbox('auto', { find: found, works: broken })).toEqual({ kind: 'none' });
    expect(() => resolveSandbox('bwrap', { find: found, works: broken })).toThrow(/cannot create a sandbox/);
  });

  it('none never sandboxes', () => {
    expect(resolveSandbox('none', { find: found })).toEqual({ kind: 'none' });
  });

  it('as root, bwrap needs setpriv to give apps their own uid and auto sandboxes without it', () => {
    expect(resolveSandbox('bwrap', { find: found, isRoot: true, works })).toMatchObject({ setprivPath: '/usr/bin/setpriv' });
    const onlyBwrap = (c: readonly string[]) => (c[0] === '/usr/bin/bwrap' ? c[0] : undefined);
    expect(() => resolveSandbox('bwrap', { find: onlyBwrap, isRoot: true, works })).toThrow(/setpriv/);
    // auto still sandboxes, without a uid of the app's own.
    expect(resolveSandbox('auto', { find: onlyBwrap, isRoot: true, works })).toMatchObject({ kind: 'bwrap', setprivPath: undefined });
  });
});

describe('sandbox passwd', () => {
  it('keeps the system accounts, drops the host\'s people and names the app uid vcap', () => {
    const host = ['root:x:0:0:root:/root:/bin/bash', 'alice:x:1000:1000::/home/alice:/bin/bash', 'nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin'].join('\n');
    expect(sandboxPasswd({ uid: 200_007, gid: 200_007 }, host).split('\n')).toEqual([
      'root:x:0:0:root:/root:/bin/bash',
      'nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin',
      'vcap:x:200007:200007:vcap:/home/vcap:/bin/sh',
      '',
    ]);
  });
});
