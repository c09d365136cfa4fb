/**
 * Ruby's `"#{value}"` for a value a client sent, as upstream's validation messages interpolate it. Never throws:
 * `String()` does for a parsed object with its own `toString` or `valueOf` key (`{"guid": {"toString": 1}}`
 * has no callable conversion), and `JSON.stringify` does for a YAML document whose aliases make a cycle.
 */
export function rubyToS(value: unknown): string {
  if (typeof value !== 'object' || value === null) return String(value);
  try {
    return JSON.stringify(value);
  } catch {
    return Array.isArray(value) ? '[...]' : '{...}';
  }
}
