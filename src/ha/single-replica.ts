import fs from 'node:fs';
import os from 'node:os';

/**
 * With SQLite exactly one Kiln may run against a database file: the controllers of two would both start every
 * instance. The first replica writes `<file>.replica` (its pid and host); a second one finds it and refuses to
 * start, naming the first, unless that process is gone (a crash leaves the file behind). Returns the release.
 */
export function claimSqliteFile(file: string): () => void {
  const lockFile = `${file}.replica`;
  const mine = JSON.stringify({ pid: process.pid, host: os.hostname(), since: new Date().toISOString() });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      fs.writeFileSync(lockFile, mine, { flag: 'wx', mode: 0o600 });
      return () => {
        try {
          if (fs.readFileSync(lockFile, 'utf8') === mine) fs.unlinkSync(lockFile);
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder: { pid?: number; host?: string; since?: string } = {};
    try {
      holder = JSON.parse(fs.readFileSync(lockFile, 'utf8')) as typeof holder;
    } catch {
      // unreadable or half-written: treat it as stale
    }
    const sameProcess = holder.pid === process.pid && holder.host === os.hostname();
    if (!sameProcess && holder.pid !== undefined && (holder.host !== os.hostname() || alive(holder.pid))) {
      throw new Error(
        `Another Kiln (pid ${holder.pid} on ${holder.host}, since ${holder.since}) is running against ${file}. ` +
          'With SQLite exactly one replica may run; run several replicas on PostgreSQL (DATABASE_URL=postgres://…). ' +
          `If that process is gone, delete ${lockFile}.`,
      );
    }
    // Left by a process that is gone (or by this one): take it over.
    fs.rmSync(lockFile, { force: true });
  }
  throw new Error(`could not claim ${lockFile}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
