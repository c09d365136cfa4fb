import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Runs the real `kubectl` binary against a kubeconfig, with its own discovery cache directory (so a CRD created
 * by one test is discovered by the next call, as on a fresh machine). Resolves with the exit code, stdout and
 * stderr; never throws on a non-zero exit.
 */
export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export const kubectlPath = (): string | undefined =>
  ['/usr/bin/kubectl', '/usr/local/bin/kubectl'].find((p) => fs.existsSync(p)) ??
  (process.env.PATH ?? '').split(':').map((d) => path.join(d, 'kubectl')).find((p) => fs.existsSync(p));

export function kubectlFor(kubeconfig: string) {
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kubectl-cache-'));
  const bin = kubectlPath();
  return (args: string[], stdin?: string): Promise<KubectlResult> =>
    new Promise((resolve) => {
      if (!bin) throw new Error('kubectl is not installed (Debian package kubernetes-client)');
      const child = execFile(
        bin,
        [`--kubeconfig=${kubeconfig}`, `--cache-dir=${cacheDir}`, ...args],
        { env: { ...process.env, KUBECONFIG: kubeconfig, HOME: cacheDir }, timeout: 60_000 },
        (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
      if (stdin !== undefined) {
        child.stdin!.write(stdin);
        child.stdin!.end();
      }
    });
}

export type Kubectl = ReturnType<typeof kubectlFor>;

/** Runs kubectl and hands back its stdout, failing the test with its stderr on a non-zero exit. */
export async function mustSucceed(kubectl: Kubectl, args: string[], stdin?: string): Promise<string> {
  const r = await kubectl(args, stdin);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}
