/**
 * The subset of SCIM filters (RFC 7644 §3.4.2.2) that cf CLI and UAA clients send to `/Users`:
 * `attr op "value"` terms with eq/co/sw/pr joined by `and` / `or` (`and` binds tighter), no parentheses.
 */
export type ScimRecord = Record<string, string | null | undefined>;
export type ScimPredicate = (r: ScimRecord) => boolean;

export class ScimFilterError extends Error {}

const TERM = /^\s*([A-Za-z][\w.]*)\s+(eq|co|sw|pr)(?:\s+"((?:[^"\\]|\\.)*)")?\s*/i;
const JOIN = /^(and|or)\b\s*/i;

export function parseScimFilter(filter: string): ScimPredicate {
  let rest = filter.trim();
  const groups: ScimPredicate[][] = [[]];
  for (;;) {
    const m = TERM.exec(rest);
    if (!m) throw new ScimFilterError(`Invalid filter expression: [${filter}]`);
    const attr = m[1]!.toLowerCase();
    const op = m[2]!.toLowerCase();
    if (op !== 'pr' && m[3] === undefined) throw new ScimFilterError(`Invalid filter expression: [${filter}]`);
    const want = (m[3] ?? '').replace(/\\(.)/g, '$1').toLowerCase();
    groups[groups.length - 1]!.push((r) => {
      const v = r[attr];
      if (op === 'pr') return v !== null && v !== undefined && v !== '';
      if (v === null || v === undefined) return false;
      const have = v.toLowerCase();
      if (op === 'eq') return have === want;
      if (op === 'co') return have.includes(want);
      return have.startsWith(want);
    });
    rest = rest.slice(m[0].length);
    if (rest === '') break;
    const j = JOIN.exec(rest);
    if (!j) throw new ScimFilterError(`Invalid filter expression: [${filter}]`);
    if (j[1]!.toLowerCase() === 'or') groups.push([]);
    rest = rest.slice(j[0].length);
  }
  return (r) => groups.some((all) => all.every((p) => p(r)));
}
