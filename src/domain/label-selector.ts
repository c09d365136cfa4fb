import { badQuery } from './errors.ts';
import { labelKeyErrors, labelValueErrors, splitKey } from './metadata.ts';

export type Requirement =
  | { op: 'exists'; prefix: string; name: string }
  | { op: 'not_exists'; prefix: string; name: string }
  | { op: 'in'; prefix: string; name: string; values: string[] }
  | { op: 'notin'; prefix: string; name: string; values: string[] };

const MAX_REQUIREMENTS = 50;
const KEY = '[A-Za-z0-9_./-]+';
const patterns: Array<[RegExp, (m: RegExpMatchArray) => { op: Requirement['op']; key: string; values?: string[] }]> = [
  [new RegExp(`^!(${KEY})$`), (m) => ({ op: 'not_exists', key: m[1]! })],
  [new RegExp(`^(${KEY}) in \\(([^()]*)\\)$`), (m) => ({ op: 'in', key: m[1]!, values: m[2]!.split(',') })],
  [new RegExp(`^(${KEY}) notin \\(([^()]*)\\)$`), (m) => ({ op: 'notin', key: m[1]!, values: m[2]!.split(',') })],
  [new RegExp(`^(${KEY})!=(.*)$`), (m) => ({ op: 'notin', key: m[1]!, values: [m[2]!] })],
  [new RegExp(`^(${KEY})==?(.*)$`), (m) => ({ op: 'in', key: m[1]!, values: [m[2]!] })],
  [new RegExp(`^(${KEY})$`), (m) => ({ op: 'exists', key: m[1]! })],
];

/** Splits on commas that are not inside parentheses. */
function splitRequirements(selector: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of selector) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts;
}

/**
 * Parses a CF `label_selector` into requirements (AND-ed). Equality is `in` with one value and
 * inequality `notin` with one value, which have the same meaning.
 */
export function parseLabelSelector(selector: string): Requirement[] {
  if (selector.trim() === '') throw badQuery('Missing label_selector value');
  const raw = splitRequirements(selector);
  if (raw.length > MAX_REQUIREMENTS) {
    throw badQuery(`Too many label_selector requirements (maximum is ${MAX_REQUIREMENTS})`);
  }
  const out: Requirement[] = [];
  for (const part of raw) {
    let parsed: { op: Requirement['op']; key: string; values?: string[] } | undefined;
    for (const [re, build] of patterns) {
      const m = part.match(re);
      if (m) {
        parsed = build(m);
        break;
      }
    }
    if (!parsed) throw badQuery('Invalid label_selector value');
    const errors = [...labelKeyErrors(parsed.key), ...(parsed.values ?? []).flatMap((v) => labelValueErrors(v))];
    if (errors.length > 0) throw badQuery(errors.join(', '));
    const { prefix, name } = splitKey(parsed.key);
    if (parsed.op === 'exists' || parsed.op === 'not_exists') out.push({ op: parsed.op, prefix, name });
    else out.push({ op: parsed.op, prefix, name, values: parsed.values ?? [] });
  }
  return out;
}
