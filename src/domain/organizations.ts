import { z } from 'zod';
import { MetadataRequestSchema } from './metadata.ts';

const Name = z
  .string({ error: 'Name must be a string' })
  .min(1, 'Name is too short (minimum is 1 character)')
  .max(255, 'Name is too long (maximum is 255 characters)');

/** Upstream validates presence first: a body without a name is "Name can't be blank". */
const CreateName = z
  .string({ error: (iss) => (iss.input === undefined || iss.input === null ? "Name can't be blank" : 'Name must be a string') })
  .refine((s) => s.trim() !== '', "Name can't be blank")
  .pipe(Name);

export const CreateOrganizationSchema = z
  .object({
    name: CreateName,
    suspended: z.boolean({ error: 'Suspended must be a boolean' }).optional(),
    metadata: MetadataRequestSchema.optional(),
  })
  .strict();
export type CreateOrganization = z.infer<typeof CreateOrganizationSchema>;

export const UpdateOrganizationSchema = z
  .object({
    name: Name.optional(),
    suspended: z.boolean({ error: 'Suspended must be a boolean' }).optional(),
    metadata: MetadataRequestSchema.optional(),
  })
  .strict();
export type UpdateOrganization = z.infer<typeof UpdateOrganizationSchema>;
