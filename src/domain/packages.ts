import { z } from 'zod';
import { MetadataRequestSchema } from './metadata.ts';

export const PACKAGE_TYPES = ['bits', 'docker'] as const;
export type PackageType = (typeof PACKAGE_TYPES)[number];

export const PACKAGE_STATES = ['AWAITING_UPLOAD', 'PROCESSING_UPLOAD', 'READY', 'FAILED', 'COPYING', 'EXPIRED'] as const;
export type PackageState = (typeof PACKAGE_STATES)[number];

/** Docker registry passwords are never shown; a set one is rendered as this. */
export const HIDDEN_PASSWORD = '***';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Problems with a create body's `relationships` naming one required to-one parent (`app`), worded as Cloud
 * Controller words them; an empty list means `relationships.<name>.data.guid` is a usable string.
 */
export function toOneRelationshipErrors(value: unknown, name: string): string[] {
  const prefix = 'Relationships';
  const Name = name.charAt(0).toUpperCase() + name.slice(1);
  if (!isObject(value)) return [`${prefix} 'relationships' is not an object`];
  const keys = Object.keys(value);
  if (keys.length === 0) return [`${prefix} 'relationships' must include one or more valid relationships`];
  const errors: string[] = [];
  const extra = keys.filter((k) => k !== name);
  if (extra.length > 0) errors.push(`${prefix} Unknown field(s): ${extra.map((k) => `'${k}'`).join(', ')}`);
  const rel = value[name];
  const data = isObject(rel) ? rel.data : undefined;
  if (!isObject(data) || !('guid' in data)) {
    errors.push(`${prefix} ${Name} must be structured like this: "${name}: {"data": {"guid": "valid-guid"}}"`);
    return errors;
  }
  const guid = data.guid;
  if (typeof guid !== 'string') errors.push(`${prefix} ${Name} guid must be a string`);
  else if (guid.length < 1 || guid.length > 200) errors.push(`${prefix} ${Name} guid must be between 1 and 200 characters`);
  return errors;
}

/** `relationships: {app: {data: {guid}}}`, required, as a zod schema yielding the app guid. */
export const AppRelationship = z.unknown().transform((value, ctx) => {
  const errors = toOneRelationshipErrors(value, 'app');
  if (errors.length > 0) {
    for (const message of errors) ctx.issues.push({ code: 'custom', message, input: value });
    return z.NEVER;
  }
  return { app: { data: { guid: ((value as Record<string, unknown>).app as { data: { guid: string } }).data.guid } } };
});

export interface DockerData {
  image: string;
  username: string | null;
  password: string | null;
}

/** `POST /v3/packages` (without `source_guid`). */
export const CreatePackageSchema = z
  .object({
    type: z.unknown(),
    data: z.unknown().optional(),
    relationships: AppRelationship,
    metadata: MetadataRequestSchema.optional(),
  })
  .strict()
  .transform((body, ctx) => {
    const fail = (message: string) => {
      ctx.issues.push({ code: 'custom', message, input: body });
      return z.NEVER;
    };
    if (typeof body.type !== 'string' || !(PACKAGE_TYPES as readonly string[]).includes(body.type)) {
      return fail("Type must be one of 'bits, docker'");
    }
    const type = body.type as PackageType;
    let docker: DockerData | undefined;
    if (type === 'bits') {
      if (body.data !== undefined && body.data !== null && !(isObject(body.data) && Object.keys(body.data).length === 0)) {
        return fail('Data must be empty if provided for bits packages');
      }
    } else {
      const data = body.data;
      if (!isObject(data)) return fail("Data can't be blank");
      const extra = Object.keys(data).filter((k) => !['image', 'username', 'password'].includes(k));
      if (extra.length > 0) return fail(`Data Unknown field(s): ${extra.map((k) => `'${k}'`).join(', ')}`);
      if (typeof data.image !== 'string' || data.image.trim() === '') return fail('Data Image required');
      if (data.username !== undefined && data.username !== null && typeof data.username !== 'string') return fail('Data Username must be a string');
      if (data.password !== undefined && data.password !== null && typeof data.password !== 'string') return fail('Data Password must be a string');
      const username = (data.username as string | null | undefined) ?? null;
      const password = (data.password as string | null | undefined) ?? null;
      if ((username === null) !== (password === null)) return fail('Data Username and password must both be provided or both be absent');
      docker = { image: data.image, username, password };
    }
    return { type, docker, appGuid: body.relationships.app.data.guid, metadata: body.metadata };
  });
export type CreatePackage = z.infer<typeof CreatePackageSchema>;

/** `POST /v3/packages?source_guid=…`: only the destination app. */
export const CopyPackageSchema = z
  .object({ relationships: AppRelationship })
  .strict()
  .transform((b) => ({ appGuid: b.relationships.app.data.guid }));
export type CopyPackage = z.infer<typeof CopyPackageSchema>;

export const UpdatePackageSchema = z
  .object({
    metadata: MetadataRequestSchema.optional(),
    username: z.string({ error: 'Username must be a string' }).nullable().optional(),
    password: z.string({ error: 'Password must be a string' }).nullable().optional(),
  })
  .strict();
export type UpdatePackage = z.infer<typeof UpdatePackageSchema>;

/** The upload's `resources` field must be a JSON array (entries are validated by the resource cache's schema). */
export const UPLOAD_NEEDS_CONTENT = 'Upload must include either resources or bits';
