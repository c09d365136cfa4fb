import type { MiddlewareHandler } from 'hono';
import { KilnError, badQuery } from '../../domain/errors.ts';
import type { Env } from '../context.ts';

/**
 * Refuses URLs carrying a NUL character (`%00`), which PostgreSQL cannot compare: in the path nothing can match
 * (404 Unknown request, as for any unknown path); in the query it is a bad parameter (400).
 */
export function rejectNulInUrl(): MiddlewareHandler<Env> {
  return async (c, next) => {
    const url = c.req.url;
    if (!/%00|\u0000/.test(url)) return next();
    const q = url.indexOf('?');
    const pathPart = q === -1 ? url : url.slice(0, q);
    if (/%00|\u0000/.test(pathPart)) throw new KilnError('NotFound');
    throw badQuery('Query parameters must not contain NUL characters');
  };
}
