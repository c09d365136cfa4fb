import type { Context } from 'hono';
import { badQuery } from '../../domain/errors.ts';
import type { ListParams, ListSpec } from '../../domain/list-params.ts';
import { parseListParams } from '../../domain/list-params.ts';
import type { Metadata } from '../../domain/metadata.ts';
import type { Page } from '../../store/list-query.ts';
import { metadataOfMany } from '../../services/metadata-reads.ts';
import type { Env } from '../context.ts';
import type { Ctx } from '../../services/context.ts';
import type { Store } from '../../store/store.ts';
import { pagination, type Pagination } from './pagination.ts';

/** Parses the query string of a list endpoint against its spec. */
export function listParams(c: Context<Env>, spec: ListSpec): ListParams {
  return parseListParams(new URL(c.req.url).searchParams, spec);
}

/** The query of a non-list endpoint: only `allowed` keys are accepted (else 400 CF-BadQueryParameter). */
export function queryOf(c: Context<Env>, allowed: readonly string[] = []): Record<string, string> {
  const search = new URL(c.req.url).searchParams;
  const unknown = [...new Set([...search.keys()].filter((k) => !allowed.includes(k)))];
  if (unknown.length > 0) {
    throw badQuery(
      `Unknown query parameter(s): ${unknown.map((u) => `'${u}'`).join(', ')}. Valid parameters are: ${allowed.map((a) => `'${a}'`).join(', ')}`,
    );
  }
  return Object.fromEntries(search);
}

/**
 * Renders one page of rows as a CF list: loads their metadata in one go (when `resourceType` is given),
 * presents each row, and adds absolute pagination links.
 */
export async function renderList<R extends { guid: string }, P>(
  c: Context<Env>,
  deps: Pick<Ctx, 'store'>,
  page: Page<R>,
  params: ListParams,
  present: (row: R, metadata: Metadata | undefined) => P,
  opts: { resourceType?: string; included?: Record<string, unknown[]> } = {},
) {
  const metadata = opts.resourceType
    ? await metadataOfMany(deps, opts.resourceType, page.rows.map((r) => r.guid))
    : undefined;
  const body: { pagination: Pagination; resources: P[]; included?: Record<string, unknown[]> } = {
    pagination: pagination(c.get('linker'), c.req.path, params, page.total),
    resources: page.rows.map((r) => present(r, metadata?.get(r.guid))),
  };
  if (opts.included) body.included = opts.included;
  const text = JSON.stringify(body);
  c.set('listCacheBody', text);
  return c.body(text, 200, { 'Content-Type': 'application/json' });
}

/** 202 Accepted with an absolute Location pointing at the job. */
export function acceptedJob(c: Context<Env>, jobGuid: string): Response {
  c.header('Location', c.var.linker.href(`/v3/jobs/${jobGuid}`));
  return c.body(null, 202);
}

/**
 * The service-layer context for this request: the one the authenticating middleware set (c.get, not c.var: the
 * latter copies every variable into a new object on each access); a request it let through without a caller (a
 * public endpoint) gets one without access or principal, as before.
 */
export const serviceCtx = (c: Context<Env>, deps: { store: Store }): Ctx =>
  c.get('ctx') ?? {
    store: deps.store,
    access: c.get('access'),
    principal: c.get('principal'),
  };
