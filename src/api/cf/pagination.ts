import type { ListParams } from '../../domain/list-params.ts';
import type { Link, Linker } from './links.ts';

export interface Pagination {
  total_results: number;
  total_pages: number;
  first: Link;
  last: Link;
  next: Link | null;
  previous: Link | null;
}

/** Builds a CF pagination object; hrefs are absolute with the client's filters, keys sorted (Rails to_query). */
export function pagination(linker: Linker, path: string, params: ListParams, total: number): Pagination {
  const totalPages = Math.max(1, Math.ceil(total / params.perPage));
  const pageLink = (page: number): Link => {
    const entries: Array<[string, string]> = [
      ...params.echo,
      ['page', String(page)],
      ['per_page', String(params.perPage)],
    ];
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return { href: linker.href(`${path}?${new URLSearchParams(entries).toString()}`) };
  };
  return {
    total_results: total,
    total_pages: totalPages,
    first: pageLink(1),
    last: pageLink(totalPages),
    next: params.page + 1 <= totalPages ? pageLink(params.page + 1) : null,
    previous: params.page - 1 >= 1 ? pageLink(params.page - 1) : null,
  };
}

export interface ListResponse<R> {
  pagination: Pagination;
  resources: R[];
  included?: Record<string, unknown[]>;
}
