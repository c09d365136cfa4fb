/** True when a database error is a unique-constraint violation (SQLite or PostgreSQL). */
export function isUniqueViolation(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { code?: unknown; message?: unknown };
  if (e.code === '23505') return true; // PostgreSQL unique_violation
  if (typeof e.code === 'string' && e.code.startsWith('SQLITE_CONSTRAINT_UNIQUE')) return true;
  if (e.code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return true;
  return false;
}
