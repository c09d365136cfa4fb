import { closeSync, readdirSync, readFileSync } from 'node:fs';

/** O_CLOEXEC as /proc/<pid>/fdinfo shows it (octal flags). */
const O_CLOEXEC = 0o2000000;

/**
 * Closes the file descriptors this process inherited without close-on-exec (beyond stdin, stdout and stderr), and
 * returns their numbers.
 *
 * Every app instance, task and staging run is started by Kiln, and a descriptor Kiln holds without close-on-exec
 * passes into each of them — bubblewrap hands descriptors through to the sandbox as they are, so an app could read
 * a file through /proc/self/fd that the sandbox never binds (a shell or supervisor that started Kiln with a file of
 * Kiln's data dir open, say). Node and libuv open everything close-on-exec, so the descriptors without it are
 * exactly the inherited ones; closing them once, before anything starts, removes the path. `keep` names
 * descriptors that are Kiln's on purpose (a parent's IPC channel).
 */
export function closeInheritedDescriptors(keep: ReadonlySet<number> = new Set()): number[] {
  let fds: number[];
  try {
    fds = readdirSync('/proc/self/fd').map(Number);
  } catch {
    return []; // no /proc: not Linux, and no local sandbox either
  }
  const closed: number[] = [];
  for (const fd of fds) {
    if (!Number.isInteger(fd) || fd <= 2 || keep.has(fd)) continue;
    let flags: number;
    try {
      const m = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
      if (!m) continue;
      flags = Number.parseInt(m[1]!, 8);
    } catch {
      continue; // already gone (the directory listing's own descriptor)
    }
    if (flags & O_CLOEXEC) continue;
    try {
      closeSync(fd);
      closed.push(fd);
    } catch {
      // closed meanwhile
    }
  }
  return closed;
}
