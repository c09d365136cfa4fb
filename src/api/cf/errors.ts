import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { ZodError } from 'zod';
import { errorCatalogue } from '../../domain/error-catalogue.ts';
import { KilnError } from '../../domain/errors.ts';

export interface CfErrorBody {
  detail: string;
  title: string;
  code: number;
}

export function errorBody(e: KilnError): CfErrorBody {
  return { detail: e.detail, title: `CF-${e.errorName}`, code: e.code };
}

export function renderErrors(c: Context, e: KilnError): Response {
  return c.json({ errors: [e, ...e.more].map(errorBody) }, e.status as 400);
}

/** Maps anything thrown by a handler to the CF error document; unknown failures become UnknownError 500. */
export function handleError(err: Error, c: Context): Response {
  if (err instanceof KilnError) return renderErrors(c, err);
  if (err instanceof ZodError) {
    return renderErrors(c, new KilnError('UnprocessableEntity', zodMessages(err).join(', ')));
  }
  if (err instanceof HTTPException && err.status < 500) {
    // Hono raises these for malformed requests (e.g. a body it cannot read).
    return renderErrors(c, new KilnError('MessageParseError', 'invalid request body'));
  }
  if (clientWentAway(err, c)) {
    // Not a failure of Kiln's: the client closed the connection mid-request (a cancelled upload, a dropped
    // network). Nobody is left to read a response; 499 is what the access log and metrics record.
    c.get('log')?.debug({ reason: err.message }, 'client closed the connection before the request was read');
    return c.body(null, 499 as 400);
  }
  c.get('log')?.error({ err }, 'unhandled error');
  return c.json({ errors: [{ detail: 'An unknown error occurred.', title: 'UnknownError', code: errorCatalogue.ServerError.code }] }, 500);
}

/** Whether an error comes from the client disconnecting while its request body was being read. */
function clientWentAway(err: Error, c: Context): boolean {
  // Only the stream errors of the request itself: a genuine failure that happens to outlive its client is
  // still an unhandled error.
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== 'ECONNRESET' && code !== 'ERR_STREAM_PREMATURE_CLOSE') return false;
  return c.req.raw.signal?.aborted !== false;
}

/** Turns zod issues into CF-style sentences ("Name must be a string", "Unknown field(s): 'x'"). */
export function zodMessages(err: ZodError): string[] {
  return err.issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return `Unknown field(s): ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
    }
    if (issue.message && !issue.message.startsWith('Invalid input') && !issue.message.startsWith('Expected')) {
      return issue.message;
    }
    const field = humanize(issue.path.map(String).join('.') || 'body');
    switch (issue.code) {
      case 'invalid_type':
        return `${field} must be a ${issue.expected}`;
      case 'too_small':
        return `${field} is too short (minimum is ${String(issue.minimum)})`;
      case 'too_big':
        return `${field} is too long (maximum is ${String(issue.maximum)})`;
      case 'invalid_value':
        return `${field} must be one of ${issue.values.map(String).join(', ')}`;
      default:
        return `${field} is invalid`;
    }
  });
}

export function humanize(path: string): string {
  const s = path.replace(/_/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}
