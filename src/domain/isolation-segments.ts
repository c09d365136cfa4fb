import { z } from 'zod';
import type { ListSpec } from './list-params.ts';
import { MetadataRequestSchema } from './metadata.ts';
import { rubyToS } from './value-text.ts';

/** Cloud Controller seeds this segment at start and refers to it by this fixed guid. */
export const SHARED_ISOLATION_SEGMENT_GUID = '933b4c58-120b-499a-b85d-4b6fc9e2903b';
export const SHARED_ISOLATION_SEGMENT_NAME = 'shared';

export const ISOLATION_SEGMENT_LIST: ListSpec = {
  orderBy: ['name'],
  filters: ['names', 'organization_guids'],
  labelSelector: true,
};

/** Printable characters only (Ruby's `[[:print:]]`): no control characters, at least one character. */
const PRINTABLE = /^[^\p{Cc}\p{Cs}\u2028\u2029]+$/u;
export const NAME_FORMAT = 'Isolation Segment names can only contain non-blank unicode characters';
export const NAME_TAKEN = 'Isolation Segment names are case insensitive and must be unique';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const blank = (v: unknown) => v === undefined || v === null || (typeof v === 'string' && v.trim() === '');

const fail = (ctx: z.RefinementCtx, input: unknown, messages: string[]) => {
  for (const message of messages) ctx.issues.push({ code: 'custom', message, input });
};

/**
 * The name as upstream checks it: presence (create only) and type in the request message, then the
 * model's printable-characters format. Returns the messages in that order.
 */
export function isolationSegmentNameErrors(name: unknown, creating: boolean): string[] {
  if (creating && blank(name)) return ["Name can't be blank"];
  if (name !== undefined && name !== null && typeof name !== 'string') return ['Name must be a string'];
  if (name === undefined) return [];
  if (typeof name !== 'string' || !PRINTABLE.test(name)) return [NAME_FORMAT];
  return [];
}

const Name = (creating: boolean) =>
  z.unknown().transform((value, ctx) => {
    const errors = isolationSegmentNameErrors(value, creating);
    if (errors.length > 0) {
      fail(ctx, value, errors);
      return z.NEVER;
    }
    return value as string;
  });

export const CreateIsolationSegmentSchema = z
  .object({ name: Name(true), metadata: MetadataRequestSchema.optional() })
  .strict();
export type CreateIsolationSegment = { name: string; metadata?: z.infer<typeof MetadataRequestSchema> };

export const UpdateIsolationSegmentSchema = z
  .object({ name: Name(false).optional(), metadata: MetadataRequestSchema.optional() })
  .strict();
export type UpdateIsolationSegment = { name?: string; metadata?: z.infer<typeof MetadataRequestSchema> };

/**
 * `POST /v3/isolation_segments/:guid/relationships/organizations`: `{"data": [{"guid": …}, …]}`, worded
 * as upstream words it ("Data can't be blank", "Data must be an array", "Data <guid> not a string").
 */
export const EntitleOrganizationsSchema = z.unknown().transform((value, ctx) => {
  const body = isObject(value) ? value : {};
  const errors: string[] = [];
  const extra = Object.keys(body).filter((k) => k !== 'data');
  if (extra.length > 0) errors.push(`Unknown field(s): '${extra.join("', '")}'`);
  const data = body.data;
  if (data === undefined || data === null || (Array.isArray(data) && data.length === 0) || (isObject(data) && Object.keys(data).length === 0) || data === '') {
    errors.push("Data can't be blank");
  }
  if (data !== undefined && data !== null && !Array.isArray(data)) errors.push('Data must be an array');
  const guids: string[] = [];
  if (Array.isArray(data)) {
    for (const item of data) {
      const guid = isObject(item) ? item.guid : undefined;
      if (typeof guid === 'string') guids.push(guid);
      else errors.push(`Data ${guid === undefined || guid === null ? '' : rubyToS(guid)} not a string`);
    }
  }
  if (errors.length > 0) {
    fail(ctx, value, errors);
    return z.NEVER;
  }
  return { guids: [...new Set(guids)] };
});
export type EntitleOrganizations = z.infer<typeof EntitleOrganizationsSchema>;

/**
 * The to-one bodies of `PATCH /v3/organizations/:guid/relationships/default_isolation_segment` and
 * `PATCH /v3/spaces/:guid/relationships/isolation_segment`. `data` may be null (unassign); an absent
 * `data` changes nothing (`requested` is false), as upstream does.
 */
export const IsolationSegmentToOneSchema = z.unknown().transform((value, ctx) => {
  const body = isObject(value) ? value : {};
  const errors: string[] = [];
  const extra = Object.keys(body).filter((k) => k !== 'data');
  if (extra.length > 0) errors.push(`Unknown field(s): '${extra.join("', '")}'`);
  const requested = Object.hasOwn(body, 'data');
  const data = body.data;
  let guid: string | null = null;
  if (requested && data !== null) {
    if (data === undefined || data === '' || (isObject(data) && Object.keys(data).length === 0) || (Array.isArray(data) && data.length === 0)) {
      errors.push("Data can't be blank");
    }
    if (!isObject(data)) {
      errors.push('Data must be an object');
    } else {
      if (Object.keys(data).length !== 1) errors.push('Data can only accept one key');
      if (!Object.hasOwn(data, 'guid')) errors.push("Data can only accept key 'guid'");
      const g = data.guid;
      if (g !== undefined && g !== null && g !== false && typeof g !== 'string') errors.push(`Data ${JSON.stringify(g)} must be a string`);
      if (typeof g === 'string') guid = g;
    }
  }
  if (errors.length > 0) {
    fail(ctx, value, errors);
    return z.NEVER;
  }
  return { requested, guid };
});
export type IsolationSegmentToOne = z.infer<typeof IsolationSegmentToOneSchema>;
