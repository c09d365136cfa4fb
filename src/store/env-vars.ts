import { parseJsonObject } from '../domain/apps.ts';
import type { SecretBox } from './secret-box.ts';

/**
 * App environment variables at rest (issue 9 §8): the one place that seals and opens them. The columns that hold
 * them — `apps.environment_variables`, `revisions.environment_variables`, `processes.launched_environment_variables`
 * and `deployments.previous_environment_variables` — store the sealed JSON object (secret-box.ts, no row
 * context, so a value copied from one column to another as it stands — a launch, a revision, a rollback — still
 * opens). Values written before sealing are plain JSON and still read; `rewrapSecrets` seals them at the next
 * start. Compare opened values, never the sealed text: every seal has a fresh nonce.
 */

export const ENV_VAR_COLUMNS = [
  ['apps', 'environment_variables'],
  ['revisions', 'environment_variables'],
  ['processes', 'launched_environment_variables'],
  ['deployments', 'previous_environment_variables'],
] as const;

export function sealEnvVars(box: SecretBox, vars: Record<string, string>): string {
  return box.seal(JSON.stringify(vars));
}

export function openEnvVars(box: SecretBox, stored: string | null | undefined): Record<string, string> {
  if (!stored) return {};
  return parseJsonObject(isSealed(stored) ? box.open(stored) : stored);
}

export const isSealed = (stored: string): boolean => stored.startsWith('v1:');
