import { z } from 'zod';
import { MetadataRequestSchema, type MetadataRequest } from './metadata.ts';

/** A validated `POST /v3/users` body: by guid, or by username and origin of an existing identity user. */
export type CreateUser = ({ guid: string } | { username: string; origin: string }) & { metadata?: MetadataRequest };

const ALLOWED = ['guid', 'username', 'origin', 'metadata'];

/** Problems of a `POST /v3/users` body, worded and ordered as Cloud Controller reports them. */
export function createUserErrors(body: Record<string, unknown>): string[] {
  const errors: string[] = [];
  const extra = Object.keys(body).filter((k) => !ALLOWED.includes(k));
  if (extra.length > 0) errors.push(`Unknown field(s): ${extra.map((k) => `'${k}'`).join(', ')}`);
  const { guid, username, origin } = body;
  const present = (v: unknown) => v !== undefined && v !== null;
  if (present(guid)) {
    if (typeof guid !== 'string') errors.push('Guid must be a string');
    if (typeof guid !== 'string' || guid.length < 1 || guid.length > 200) errors.push('Guid must be between 1 and 200 characters');
  }
  if (present(origin) && typeof origin !== 'string') errors.push('Origin must be a string');
  if (present(username) && typeof username !== 'string') errors.push('Username must be a string');
  if (present(guid)) {
    if (present(username)) errors.push("Username cannot be provided with 'guid'");
    if (present(origin)) errors.push("Origin cannot be provided with 'guid'");
  } else if (present(username) || present(origin)) {
    if (!present(username)) errors.push("Origin can only be provided together with 'username'");
    if (!present(origin)) errors.push("Username can only be provided together with 'origin'");
    if (origin === 'uaa') errors.push("Origin cannot be 'uaa' when creating a user by username");
  } else {
    errors.push("Guid or 'username' and 'origin' must be provided");
  }
  return errors;
}

export const CreateUserSchema = z
  .object({ metadata: MetadataRequestSchema.optional() })
  .catchall(z.unknown())
  .transform((body, ctx): CreateUser => {
    const errors = createUserErrors(body);
    if (errors.length > 0) {
      for (const message of errors) ctx.issues.push({ code: 'custom', message, input: body });
      return z.NEVER;
    }
    const meta = body.metadata ? { metadata: body.metadata } : {};
    return typeof body.guid === 'string'
      ? { guid: body.guid, ...meta }
      : { username: body.username as string, origin: body.origin as string, ...meta };
  });

/** `PATCH /v3/users/:guid`: only metadata can change (username and origin belong to the identity provider). */
export const UpdateUserSchema = z.object({ metadata: MetadataRequestSchema.optional() }).strict();
export type UpdateUser = z.infer<typeof UpdateUserSchema>;

/** List filters of the three user lists (Appendix A); usernames and partial_usernames exclude each other. */
export const USER_LIST_FILTERS = ['usernames', 'partial_usernames', 'origins'] as const;

export function userListFilterErrors(filters: Record<string, string[]>): string[] {
  const errors: string[] = [];
  if (filters.origins && !filters.usernames && !filters.partial_usernames) {
    errors.push('Origins filter cannot be provided without usernames or partial_usernames filter.');
  }
  if (filters.usernames && filters.partial_usernames) {
    errors.push('Usernames filter cannot be provided with both usernames and partial_usernames filter.');
  }
  return errors;
}

/** What clients see as a user's name: the username, or the guid for clients and unknown users. */
export const presentationName = (u: { guid: string; username: string | null }) => u.username ?? u.guid;
