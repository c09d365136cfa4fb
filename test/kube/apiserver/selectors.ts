import { badRequest } from './errors.ts';

/**
 * Label selectors in the string form the API takes (`a=b,c!=d,e in (x,y),f notin (z),g,!h`) and field selectors
 * (`metadata.name=x,metadata.namespace!=y`). Which fields a kind may be selected by is the caller's list, as on a
 * real server (every kind supports metadata.name and metadata.namespace; a few builtins add more).
 */
type Requirement =
  | { key: string; op: 'eq' | 'neq'; value: string }
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | 'notexists' };

export type Matcher = (labels: Record<string, string>) => boolean;

function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) parts.push(cur);
  return parts.map((p) => p.trim()).filter(Boolean);
}

export function parseLabelSelector(selector: string | undefined): Matcher {
  if (!selector || !selector.trim()) return () => true;
  const reqs: Requirement[] = splitTopLevel(selector).map((part) => {
    const set = part.match(/^([\w./-]+)\s+(in|notin)\s*\(([^)]*)\)$/);
    if (set) return { key: set[1]!, op: set[2] as 'in' | 'notin', values: set[3]!.split(',').map((v) => v.trim()).filter(Boolean) };
    const neq = part.match(/^([\w./-]+)\s*!=\s*([\w.-]*)$/);
    if (neq) return { key: neq[1]!, op: 'neq', value: neq[2]! };
    const eq = part.match(/^([\w./-]+)\s*==?\s*([\w.-]*)$/);
    if (eq) return { key: eq[1]!, op: 'eq', value: eq[2]! };
    const not = part.match(/^!\s*([\w./-]+)$/);
    if (not) return { key: not[1]!, op: 'notexists' };
    if (/^[\w./-]+$/.test(part)) return { key: part, op: 'exists' };
    throw badRequest(`unable to parse requirement: invalid label selector "${selector}"`);
  });
  return (labels) =>
    reqs.every((r) => {
      const has = Object.hasOwn(labels, r.key);
      const v = labels[r.key];
      switch (r.op) {
        case 'eq':
          return has && v === r.value;
        case 'neq':
          return !has || v !== r.value;
        case 'in':
          return has && r.values.includes(v!);
        case 'notin':
          return !has || !r.values.includes(v!);
        case 'exists':
          return has;
        case 'notexists':
          return !has;
      }
    });
}

export type FieldMatcher = (obj: Record<string, unknown>) => boolean;

export function fieldValue(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  for (const seg of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur;
}

export function parseFieldSelector(selector: string | undefined, allowed: readonly string[], kind: string): FieldMatcher {
  if (!selector || !selector.trim()) return () => true;
  const reqs = selector.split(',').map((part) => {
    const m = part.trim().match(/^([\w.]+)\s*(==|!=|=)\s*(.*)$/);
    if (!m) throw badRequest(`invalid selector: '${selector}'; can't understand '${part}'`);
    const field = m[1]!;
    if (!allowed.includes(field)) throw badRequest(`field label not supported: ${field}`);
    return { field, neq: m[2] === '!=', value: m[3]!.trim() };
  });
  void kind;
  return (obj) =>
    reqs.every((r) => {
      const v = fieldValue(obj, r.field);
      const s = v === undefined || v === null ? '' : String(v);
      return r.neq ? s !== r.value : s === r.value;
    });
}
