/**
 * NUL characters in client input. PostgreSQL cannot store or compare text containing U+0000 (it fails the whole
 * statement), so such input is refused at the edge, on either store, rather than surfacing as a 500.
 */

/** Whether a string, or any string inside an array or object, contains U+0000. */
export function containsNul(value: unknown, depth = 0): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (depth > 64 || value === null || typeof value !== 'object') return false;
  if (Array.isArray(value)) return value.some((v) => containsNul(v, depth + 1));
  for (const [k, v] of Object.entries(value)) if (k.includes('\u0000') || containsNul(v, depth + 1)) return true;
  return false;
}
