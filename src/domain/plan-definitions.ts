import { z } from 'zod';

/** `POST /v3/service_plans` (docs/kiln-openapi.json, `ServicePlanCreate`): a plan made from a definition the broker accepts. */
export const CreateServicePlanSchema = z
  .object({
    name: z.string({ error: 'Name must be a string' }).min(1, "Name can't be blank").max(255, 'Name is too long (maximum is 255 characters)'),
    description: z.string({ error: 'Description must be a string' }).max(10_000, 'Description is too long (maximum is 10000 characters)'),
    definition: z.record(z.string(), z.unknown(), { error: 'Definition must be an object' }),
    relationships: z
      .object({ service_offering: z.object({ data: z.object({ guid: z.string({ error: 'Guid must be a string' }) }).strict() }).strict() }, { error: "Relationships can't be blank" })
      .strict(),
  })
  .strict();
export type CreateServicePlan = z.infer<typeof CreateServicePlanSchema>;

/** `PATCH /v3/service_plan_definitions/:guid` (`ServicePlanDefinitionUpdate`): the definition is replaced whole. */
export const UpdatePlanDefinitionSchema = z
  .object({
    name: z.string({ error: 'Name must be a string' }).min(1, "Name can't be blank").optional(),
    description: z.string({ error: 'Description must be a string' }).optional(),
    definition: z.record(z.string(), z.unknown(), { error: 'Definition must be an object' }),
  })
  .strict();
export type UpdatePlanDefinition = z.infer<typeof UpdatePlanDefinitionSchema>;

/** Fields of a definition the broker manages; a client's copy (e.g. from a GET) is dropped before sending. */
export const READ_ONLY_DEFINITION_FIELDS = ['created_at', 'resource_version'] as const;

/** Issue 15: "The name and description fields must match between the top-level and the definition object." */
export function nameMismatch(top: { name?: string | undefined; description?: string | undefined }, definition: Record<string, unknown>): string | undefined {
  const wrong: string[] = [];
  if (top.name !== undefined && definition.name !== top.name) wrong.push('name');
  if (top.description !== undefined && definition.description !== top.description) wrong.push('description');
  if (wrong.length === 0) return undefined;
  return `The ${wrong.join(' and ')} must match the definition's ${wrong.join(' and ')}.`;
}
