import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** A bare repository made by a test, and a working clone that commits and pushes to it. */
export class TestRepo {
  readonly bare: string;
  readonly work: string;
  constructor(root: string, branch = 'main') {
    this.bare = path.join(root, 'origin.git');
    this.work = path.join(root, 'work');
    this.git(root, 'init', '--quiet', '--bare', `--initial-branch=${branch}`, this.bare);
    this.git(root, 'init', '--quiet', `--initial-branch=${branch}`, this.work);
    this.git(this.work, 'remote', 'add', 'origin', this.bare);
  }

  git(cwd: string, ...args: string[]): string {
    return execFileSync('git', ['-c', 'user.name=Kiln Test', '-c', 'user.email=test@kiln.invalid', '-c', 'commit.gpgsign=false', ...args], { cwd, encoding: 'utf8' }).trim();
  }

  /** Writes files (null deletes), commits and pushes; returns the new commit. */
  commit(files: Record<string, string | null>, message = 'change', branch = 'main'): string {
    for (const [rel, body] of Object.entries(files)) {
      const file = path.join(this.work, rel);
      if (body === null) fs.rmSync(file, { force: true });
      else {
        fs.mkdirSync(path.dirname(file), { recursive: true });
        fs.writeFileSync(file, body);
      }
    }
    this.git(this.work, 'add', '-A');
    this.git(this.work, 'commit', '--quiet', '--allow-empty', '-m', message);
    this.git(this.work, 'push', '--quiet', 'origin', `HEAD:refs/heads/${branch}`);
    return this.git(this.work, 'rev-parse', 'HEAD');
  }

  tag(name: string): void {
    this.git(this.work, 'tag', name);
    this.git(this.work, 'push', '--quiet', 'origin', `refs/tags/${name}`);
  }

  get url(): string {
    return `file://${this.bare}`;
  }
}
