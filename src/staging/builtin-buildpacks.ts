import { fileURLToPath } from 'node:url';
import type { BuildpackSource } from './buildpack-runner.ts';

/**
 * Buildpacks shipped with Kiln, in the priority order auto-detection uses. Node.js comes before static files
 * so an app with package.json and public/index.html is staged as a Node.js app; binary (any Procfile) is last.
 */
export const BUILTIN_BUILDPACKS: ReadonlyArray<BuildpackSource & { position: number }> = [
  'nodejs_buildpack',
  'staticfile_buildpack',
  'binary_buildpack',
].map((name, i) => ({ name, position: i + 1, dir: fileURLToPath(new URL(`./buildpacks/${name}`, import.meta.url)) }));

export function builtinBuildpack(name: string): BuildpackSource | undefined {
  return BUILTIN_BUILDPACKS.find((b) => b.name === name);
}
