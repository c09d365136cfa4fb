import { z } from 'zod';
import { MetadataRequestSchema } from './metadata.ts';

export const BUILDPACK_LIFECYCLES = ['buildpack', 'cnb'] as const;
export type BuildpackLifecycle = (typeof BUILDPACK_LIFECYCLES)[number];
export const DEFAULT_BUILDPACK_LIFECYCLE: BuildpackLifecycle = 'buildpack';

export const BUILDPACK_STATES = ['AWAITING_UPLOAD', 'READY'] as const;
export type BuildpackState = (typeof BUILDPACK_STATES)[number];

/** Upstream's BuildpackCreateMessage: `format: /\A[-\w]+\z/`, at most 250 characters. */
const NAME_FORMAT = /^[-\w]+$/;

const Name = z
  .string({ error: (iss) => (iss.input === undefined || iss.input === null ? "Name can't be blank" : 'Name must be a string') })
  .refine((s) => s !== '', "Name can't be blank")
  .refine((s) => s.length <= 250, 'Name is too long (maximum is 250 characters)')
  .refine((s) => s === '' || NAME_FORMAT.test(s), 'Name is invalid');

const Stack = z
  .string({ error: 'Stack must be a string' })
  .max(250, 'Stack is too long (maximum is 250 characters)')
  .nullable();

/** Numericality as ActiveModel words it: not a number, not an integer, below 1. */
const Position = z
  .unknown()
  .superRefine((v, ctx) => {
    if (v === null || v === undefined) return;
    if (typeof v !== 'number' || !Number.isFinite(v)) ctx.addIssue({ code: 'custom', message: 'Position is not a number' });
    else if (!Number.isInteger(v)) ctx.addIssue({ code: 'custom', message: 'Position must be an integer' });
    else if (v < 1) ctx.addIssue({ code: 'custom', message: 'Position must be greater than or equal to 1' });
  })
  .transform((v) => (typeof v === 'number' ? v : null));

const Enabled = z.boolean({ error: 'Enabled must be a boolean' }).nullable();
const Locked = z.boolean({ error: 'Locked must be a boolean' }).nullable();
const Lifecycle = z.enum(BUILDPACK_LIFECYCLES, { error: 'Lifecycle must be either "buildpack" or "cnb"' }).nullable();

export const CreateBuildpackSchema = z
  .object({
    name: Name,
    stack: Stack.optional(),
    position: Position.optional(),
    enabled: Enabled.optional(),
    locked: Locked.optional(),
    lifecycle: Lifecycle.optional(),
    metadata: MetadataRequestSchema.optional(),
  })
  .strict();
export type CreateBuildpack = z.infer<typeof CreateBuildpackSchema>;

export const UpdateBuildpackSchema = z
  .object({
    name: Name.optional(),
    stack: Stack.optional(),
    position: Position.optional(),
    enabled: Enabled.optional(),
    locked: Locked.optional(),
    metadata: MetadataRequestSchema.optional(),
  })
  .strict();
export type UpdateBuildpack = z.infer<typeof UpdateBuildpackSchema>;

/** Where a new buildpack lands: positions are clamped to 1..count+1 (upstream's Buildpack.create). */
export function insertPosition(requested: number | null | undefined, count: number): number {
  return Math.min(Math.max(requested ?? 1, 1), count + 1);
}

/** Where a moved buildpack lands: clamped to 1..count (count includes the buildpack itself). */
export function movePosition(requested: number, count: number): number {
  return Math.min(Math.max(requested, 1), Math.max(count, 1));
}

// ---- upstream's 422 details ----

export const nameTaken = (name: string, stack: string | null, lifecycle: string) =>
  stack === null
    ? `Buildpack with name '${name}' and an unassigned stack already exists`
    : `Buildpack with name '${name}', stack '${stack}' and lifecycle '${lifecycle}' already exists`;
export const stackMissing = (stack: string) => `Stack '${stack}' does not exist`;
export const STACK_CANNOT_CHANGE = 'Buildpack stack cannot be changed';
export const BUILDPACK_LOCKED = 'Buildpack is locked';
/** BuildpackUploadMessage errors are joined behind this prefix. */
export const uploadInvalid = (...messages: string[]) => `Uploaded buildpack file is invalid: ${messages.join(', ')}`;
export const MISSING_BITS = "A buildpack zip file must be uploaded as 'bits'";

/** A buildpack named by URL (or git remote) rather than by an admin buildpack's name. */
export function isBuildpackUrl(name: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(name) || /^[^@\s/]+@[^:\s]+:/.test(name);
}

/** Hides credentials in a URL before it is echoed in an error or log line (user:pass@ → ***:***@). */
export function redactUrl(url: string): string {
  return url.replace(/\/\/[^/@\s]*@/, '//***:***@');
}

/** The `stack` a buildpack zip declares in its manifest.yml (upstream's StackNameExtractor), if any. */
export function manifestStack(manifest: unknown): string | null {
  if (manifest === null || typeof manifest !== 'object' || Array.isArray(manifest)) return null;
  const stack = (manifest as Record<string, unknown>).stack;
  return typeof stack === 'string' && stack.trim() !== '' ? stack.trim() : null;
}
