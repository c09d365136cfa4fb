import type { Context } from 'hono';
import type { z } from 'zod';
import { KilnError } from '../../domain/errors.ts';
import { containsNul } from '../../domain/nul.ts';

/**
 * Reads a JSON request body and validates it. An empty body counts as `{}` (the cf CLI sends
 * `Content-Type: application/json` with no body on action POSTs); unparseable JSON is a 400
 * MessageParseError; a body that fails the schema is a 422 listing every problem.
 */
export async function readJson<S extends z.ZodType>(c: Context, schema: S): Promise<z.infer<S>> {
  // The body-limit middleware has capped the body's size before it got here.
  const text = await c.req.text();
  let value: unknown = {};
  if (text.trim() !== '') {
    try {
      value = JSON.parse(text);
    } catch {
      throw new KilnError('MessageParseError', 'invalid request body');
    }
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new KilnError('MessageParseError', 'invalid request body');
  }
  if (containsNul(value)) throw new KilnError('MessageParseError', 'strings may not contain NUL characters');
  return schema.parse(value);
}
