import { z } from 'zod';
import { MetadataRequestSchema } from './metadata.ts';

/** Space names are printable text: control characters are what upstream calls "escaped characters". */
const PRINTABLE = /^[^\p{Cc}]*$/u;
const ESCAPED = 'Name must not contain escaped characters';
const TOO_LONG = 'Name is too long (maximum is 255 characters)';

const CreateName = z
  .string({ error: (iss) => (iss.input === undefined || iss.input === null ? "Name can't be blank" : 'Name must be a string') })
  .refine((s) => s.trim() !== '', "Name can't be blank")
  .max(255, TOO_LONG)
  .regex(PRINTABLE, ESCAPED);

const UpdateName = z
  .string({ error: 'Name must be a string' })
  .min(1, 'Name is too short (minimum is 1 character)')
  .max(255, TOO_LONG)
  .regex(PRINTABLE, ESCAPED);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Problems with a create body's `relationships`, worded as Cloud Controller words them (every message is
 * prefixed "Relationships"); an empty list means `relationships.organization.data.guid` is a usable string.
 */
export function organizationRelationshipErrors(value: unknown): string[] {
  const prefix = 'Relationships';
  if (!isObject(value)) return [`${prefix} 'relationships' is not an object`];
  const keys = Object.keys(value);
  if (keys.length === 0) return [`${prefix} 'relationships' must include one or more valid relationships`];
  const errors: string[] = [];
  const extra = keys.filter((k) => k !== 'organization');
  if (extra.length > 0) errors.push(`${prefix} Unknown field(s): ${extra.map((k) => `'${k}'`).join(', ')}`);
  const org = value.organization;
  const data = isObject(org) ? org.data : undefined;
  if (!isObject(data) || !('guid' in data)) {
    errors.push(`${prefix} Organization must be structured like this: "organization: {"data": {"guid": "valid-guid"}}"`);
    return errors;
  }
  const guid = data.guid;
  if (typeof guid !== 'string') errors.push(`${prefix} Organization guid must be a string`);
  else if (guid.length < 1 || guid.length > 200) errors.push(`${prefix} Organization guid must be between 1 and 200 characters`);
  return errors;
}

const OrganizationRelationship = z.unknown().transform((value, ctx) => {
  const errors = organizationRelationshipErrors(value);
  if (errors.length > 0) {
    for (const message of errors) ctx.issues.push({ code: 'custom', message, input: value });
    return z.NEVER;
  }
  // organizationRelationshipErrors has checked this exact shape.
  const guid = ((value as Record<string, unknown>).organization as { data: { guid: string } }).data.guid;
  return { organization: { data: { guid } } };
});

export const CreateSpaceSchema = z
  .object({
    name: CreateName,
    relationships: OrganizationRelationship,
    metadata: MetadataRequestSchema.optional(),
  })
  .strict();
export type CreateSpace = z.infer<typeof CreateSpaceSchema>;

export const UpdateSpaceSchema = z
  .object({
    name: UpdateName.optional(),
    metadata: MetadataRequestSchema.optional(),
  })
  .strict();
export type UpdateSpace = z.infer<typeof UpdateSpaceSchema>;

/** Uniqueness is per organization, case-insensitively; the cf CLI matches this exact phrase. */
export const SPACE_NAME_TAKEN = 'Name must be unique per organization';

// ---- space features ----

/** The only space feature Cloud Foundry has; it is backed by `spaces.allow_ssh`. */
export const SPACE_FEATURES = {
  ssh: 'Enable SSHing into apps in the space.',
} as const;
export type SpaceFeatureName = keyof typeof SPACE_FEATURES;

export const isSpaceFeature = (name: string): name is SpaceFeatureName => Object.hasOwn(SPACE_FEATURES, name);

export const UpdateSpaceFeatureSchema = z
  .object({ enabled: z.boolean({ error: 'Enabled must be a boolean' }) })
  .strict();
export type UpdateSpaceFeature = z.infer<typeof UpdateSpaceFeatureSchema>;

// ---- DELETE /v3/spaces/:guid/routes ----

/**
 * The `unmapped` query parameter is mandatory and must be `true`: deleting every route of a space at once
 * is not offered. Returns the 422 detail for a bad value, or undefined when the request may proceed.
 */
export function unmappedRoutesParamError(unmapped: string | undefined): string | undefined {
  if (unmapped === undefined) return "Mass delete not supported for routes. Use 'unmapped' parameter to delete all unmapped routes.";
  if (unmapped === 'false') return "Mass delete not supported for mapped routes. Use 'unmapped=true' parameter to delete all unmapped routes.";
  if (unmapped !== 'true') return 'Unmapped is not included in the list';
  return undefined;
}
