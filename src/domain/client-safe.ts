/**
 * Error text that may be shown to API clients. Node's file-system errors name files on the server
 * (`ENOENT: no such file or directory, open '/var/kiln/tmp/…'`), which tells a tenant where Kiln keeps its
 * data; they are reworded to their kind. Any other absolute path in a message is cut out.
 */

const SYSTEM_ERRORS: Record<string, string> = {
  ENOENT: 'a file was not found',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOSPC: 'no space left on the server',
  EMFILE: 'too many open files',
  EISDIR: 'a directory was found where a file was expected',
  ENOTDIR: 'a file was found where a directory was expected',
  EEXIST: 'a file already exists',
  EIO: 'an input/output error occurred',
};

// An absolute path: a slash after start, whitespace, a quote, a bracket or `=`/`:`, then non-space characters.
const ABSOLUTE_PATH = /(^|[\s'"`(=:[])\/[^\s'"`()[\],;]+/g;

/** Removes absolute file paths from a text (`open '/srv/x/y'` → `open '…'`). */
export function withoutServerPaths(text: string): string {
  return text.replace(ABSOLUTE_PATH, '$1…');
}

/** A message for a client about an unexpected failure, with no server file names in it. */
export function clientSafeMessage(err: unknown): string {
  const e = err as NodeJS.ErrnoException | undefined;
  if (e && typeof e === 'object' && typeof e.code === 'string' && typeof e.syscall === 'string') {
    return `${SYSTEM_ERRORS[e.code] ?? 'a system error occurred'} (${e.code})`;
  }
  return withoutServerPaths(err instanceof Error ? err.message : String(err));
}
