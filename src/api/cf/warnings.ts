import type { Context } from 'hono';

/**
 * Adds a synchronous warning to the response: CF sends each as a form-URL-encoded value of
 * `X-Cf-Warnings` (spaces as `+`, commas as `%2C`), because clients split the header on commas.
 */
export function addWarning(c: Context, warning: string): void {
  c.header('X-Cf-Warnings', encodeWarning(warning), { append: true });
}

export const encodeWarning = (w: string) => new URLSearchParams({ w }).toString().slice(2);
