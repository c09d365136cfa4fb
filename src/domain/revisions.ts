import { z } from 'zod';
import { MetadataRequestSchema } from './metadata.ts';

export const UpdateRevisionSchema = z.object({ metadata: MetadataRequestSchema.optional() }).strict();
export type UpdateRevision = z.infer<typeof UpdateRevisionSchema>;

/** What a revision captures, to compare with the app's current state. */
export interface RevisionContent {
  dropletGuid: string;
  environmentVariables: Record<string, string>;
  /** Process type → user command (null = the droplet's detected command). */
  commands: Record<string, string | null>;
}

const sameVars = (a: Record<string, string>, b: Record<string, string>) => {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => b[k] === a[k]);
};

/**
 * Why a new revision is due, in upstream's wording (RevisionResolver): none when nothing changed. Process
 * types that appear or vanish and custom commands set, changed or removed each add a sentence.
 */
export function revisionReasons(latest: RevisionContent | undefined, current: RevisionContent): string[] {
  if (!latest) return ['Initial revision.'];
  const reasons: string[] = [];
  if (latest.dropletGuid !== current.dropletGuid) reasons.push('New droplet deployed.');
  if (!sameVars(latest.environmentVariables, current.environmentVariables)) reasons.push('New environment variables deployed.');
  const types = [...new Set([...Object.keys(latest.commands), ...Object.keys(current.commands)])].sort();
  for (const type of types) {
    const was = latest.commands[type];
    const now = current.commands[type];
    if (!(type in latest.commands)) reasons.push(`New process type '${type}' added.`);
    else if (!(type in current.commands)) reasons.push(`Process type '${type}' removed.`);
    else if (was == null && now != null) reasons.push(`Custom start command added for '${type}' process.`);
    else if (was != null && now == null) reasons.push(`Custom start command removed for '${type}' process.`);
    else if (was !== now) reasons.push(`Custom start command updated for '${type}' process.`);
  }
  // Upstream sorts the sentences (RevisionResolver#revision_reasons).
  return reasons.sort();
}

export const rolledBackTo = (version: number) => `Rolled back to revision ${version}.`;

/** Upstream's NoUpdateRollback wording (revision_resolver.rb). */
export const ROLLBACK_TO_SAME = 'Unable to rollback. The code and configuration you are rolling back to is the same as the deployed revision.';

/** Process type → command (null = detected); parseJsonObject would drop the nulls. */
export function parseCommands(text: string): Record<string, string | null> {
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return {};
    return Object.fromEntries(Object.entries(v).map(([k, c]) => [k, typeof c === 'string' ? c : null]));
  } catch {
    return {};
  }
}
