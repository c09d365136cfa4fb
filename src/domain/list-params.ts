import { badQuery } from './errors.ts';
import { parseLabelSelector, type Requirement } from './label-selector.ts';

export type TimestampOp = 'eq' | 'lt' | 'lte' | 'gt' | 'gte';
export interface TimestampFilter {
  field: 'created_at' | 'updated_at';
  op: TimestampOp;
  values: string[];
}

/** What one list endpoint accepts besides page/per_page (Appendix A of CONVENTIONS.md). */
export interface ListSpec {
  /** order_by fields (created_at and updated_at are always allowed unless `orderByOnly` is set). */
  orderBy?: readonly string[];
  orderByOnly?: readonly string[];
  /** Comma-list filters, e.g. names, organization_guids (guids is always allowed). */
  filters?: readonly string[];
  /** Single-value parameters (e.g. `embed`, `unmapped`). */
  params?: readonly string[];
  labelSelector?: boolean;
  include?: readonly string[];
  /** `fields[<resource>]=a,b`: the related resources a list can render partially, and the fields each allows. */
  fields?: Readonly<Record<string, readonly string[]>>;
  /** false for the few lists that reject created_ats / updated_ats. */
  createdAts?: boolean;
  updatedAts?: boolean;
}

export interface ListParams {
  page: number;
  perPage: number;
  orderBy: { field: string; desc: boolean; explicit: boolean } | undefined;
  filters: Record<string, string[]>;
  params: Record<string, string>;
  timestamps: TimestampFilter[];
  labelSelector: Requirement[] | undefined;
  include: string[];
  /** `fields[<resource>]` → requested fields. */
  fields: Record<string, string[]>;
  /** Everything the client sent (except paging), for pagination links. */
  echo: Array<[string, string]>;
}

const TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;
const OPS = new Set(['lt', 'lte', 'gt', 'gte']);

/** Splits a CF list value on commas; a `%2C` inside an item stands for a literal comma. */
export function splitList(value: string): string[] {
  return value.split(',').map((v, i) => (i === 0 ? v : v.replace(/^\s+/, '')).replace(/%2C/gi, ','));
}

/**
 * The furthest row a page may reach (page × per_page): beyond 2^53 − 1 an offset is no longer an exact number,
 * and no store holds that many rows anyway.
 */
export const MAX_PAGE_REACH = Number.MAX_SAFE_INTEGER;

function positiveInt(value: string, message: string): number {
  if (!/^\d+$/.test(value)) throw badQuery(message);
  const n = Number(value);
  if (n < 1) throw badQuery(message);
  return n;
}

/** Validates a list request's query string against the endpoint's spec (400 CF-BadQueryParameter). */
export function parseListParams(search: URLSearchParams, spec: ListSpec): ListParams {
  const orderFields = spec.orderByOnly ?? ['created_at', 'updated_at', ...(spec.orderBy ?? [])];
  const filterNames = new Set(['guids', ...(spec.filters ?? [])]);
  const paramNames = new Set(spec.params ?? []);
  const allowCreated = spec.createdAts !== false;
  const allowUpdated = spec.updatedAts !== false;
  const valid = [
    'page',
    'per_page',
    'order_by',
    ...(allowCreated ? ['created_ats'] : []),
    ...(allowUpdated ? ['updated_ats'] : []),
    ...filterNames,
    ...paramNames,
    ...(spec.labelSelector ? ['label_selector'] : []),
    ...(spec.include ? ['include'] : []),
    ...(spec.fields ? ['fields'] : []),
  ];

  const out: ListParams = {
    page: 1,
    perPage: 50,
    orderBy: undefined,
    filters: {},
    params: {},
    timestamps: [],
    labelSelector: undefined,
    include: [],
    fields: {},
    echo: [],
  };
  const unknown: string[] = [];
  for (const [rawKey, value] of search) {
    const m = rawKey.match(/^([a-z_]+)(?:\[([^\]]*)\])?$/);
    const key = m?.[1] ?? rawKey;
    const op = m?.[2];
    const m2 = key === 'fields' ? rawKey.match(/^fields\[([a-z_.]+)\]$/) : null;
    if (key === 'fields' && spec.fields && m2) {
      const resource = m2[1]!;
      const allowed = spec.fields[resource];
      if (!allowed) {
        throw badQuery(`The query parameter is invalid: Fields [${resource}] valid resources are: ${Object.keys(spec.fields).map((r) => `'${r}'`).join(', ')}`);
      }
      const wanted = value.split(',');
      const bad = wanted.filter((f) => !allowed.includes(f));
      if (bad.length > 0) {
        throw badQuery(`The query parameter is invalid: Fields valid keys for '${resource}' are: ${allowed.map((a) => `'${a}'`).join(', ')}`);
      }
      out.fields[resource] = wanted;
      out.echo.push([rawKey, value]);
      continue;
    }
    if (!valid.includes(key) || key === 'fields' || (op !== undefined && key !== 'created_ats' && key !== 'updated_ats')) {
      if (!unknown.includes(rawKey)) unknown.push(rawKey);
      continue;
    }
    switch (key) {
      case 'page':
        out.page = positiveInt(value, 'Page must be a positive integer');
        break;
      case 'per_page': {
        const n = positiveInt(value, 'Per page must be a positive integer');
        if (n > 5000) throw badQuery('Per page must be between 1 and 5000');
        out.perPage = n;
        break;
      }
      case 'order_by': {
        const desc = value.startsWith('-');
        const explicit = desc || value.startsWith('+') || value.startsWith(' ');
        const field = explicit ? value.slice(1) : value;
        if (!orderFields.includes(field)) {
          throw badQuery(`Order by can only be: ${orderFields.map((f) => `'${f}'`).join(', ')}`);
        }
        out.orderBy = { field, desc, explicit };
        out.echo.push(['order_by', `${desc ? '-' : '+'}${field}`]);
        break;
      }
      case 'created_ats':
      case 'updated_ats':
        out.timestamps.push(parseTimestampFilter(key, op, value));
        out.echo.push([rawKey, value]);
        break;
      case 'label_selector':
        out.labelSelector = [...(out.labelSelector ?? []), ...parseLabelSelector(value)];
        out.echo.push([rawKey, value]);
        break;
      case 'include': {
        const allowed = spec.include ?? [];
        const seen = new Set<string>();
        for (const v of value.split(',')) {
          if (!allowed.includes(v)) {
            throw badQuery(`Invalid included resource: '${v}'. Valid included resources are: ${allowed.map((a) => `'${a}'`).join(', ')}`);
          }
          if (seen.has(v)) throw badQuery(`Duplicate included resource: '${v}'`);
          seen.add(v);
        }
        out.include = [...seen];
        out.echo.push([rawKey, value]);
        break;
      }
      default:
        if (filterNames.has(key)) out.filters[key] = splitList(value);
        else out.params[key] = value;
        out.echo.push([rawKey, value]);
    }
  }
  if (unknown.length > 0) {
    throw badQuery(
      `Unknown query parameter(s): ${unknown.map((u) => `'${u}'`).join(', ')}. Valid parameters are: ${valid.map((v) => `'${v}'`).join(', ')}`,
    );
  }
  if (out.page * out.perPage > MAX_PAGE_REACH) {
    throw badQuery(`Page and per page together reach too far: page × per_page must be at most ${MAX_PAGE_REACH}`);
  }
  return out;
}

function parseTimestampFilter(key: 'created_ats' | 'updated_ats', op: string | undefined, value: string): TimestampFilter {
  const field = key === 'created_ats' ? 'created_at' : 'updated_at';
  if (op === undefined) {
    const values = value.split(',');
    for (const v of values) checkTimestamp(key, v);
    return { field, op: 'eq', values };
  }
  if (op === '' || value === '') throw badQuery(`${key} relational operator and timestamp must be specified`);
  if (!OPS.has(op)) throw badQuery(`Invalid relational operator: '${op}'`);
  if (value.includes(',')) throw badQuery(`${key} only accepts one value when using a relational operator`);
  checkTimestamp(key, value);
  return { field, op: op as TimestampOp, values: [value] };
}

function checkTimestamp(key: string, v: string): void {
  if (!TIMESTAMP_RE.test(v) || Number.isNaN(Date.parse(v))) {
    throw badQuery(`${key} has an invalid timestamp format. Timestamps should be formatted as 'YYYY-MM-DDThh:mm:ssZ'`);
  }
}
