import { z } from 'zod';
import { MetadataRequestSchema } from './metadata.ts';

const Name = z
  .string({ error: 'Name must be a string' })
  .min(1, 'Name is too short (minimum is 1 character)')
  .max(255, 'Name is too long (maximum is 255 characters)');

export const CreateOrganizationSchema = z
  .object({
    name: Name,
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
