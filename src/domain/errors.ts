import { errorCatalogue, type ErrorName } from './error-catalogue.ts';

export type { ErrorName };

/**
 * A failure the API reports to clients. It names an entry of the CF error catalogue; the HTTP status and
 * code come from there, `detail` is the human text (the catalogue message with its arguments filled in).
 */
export class KilnError extends Error {
  readonly errorName: ErrorName;
  readonly detail: string;
  /** Further errors reported in the same response (manifest validation returns several). */
  readonly more: KilnError[];

  constructor(errorName: ErrorName, ...args: Array<string | number | string[]>) {
    const detail = formatMessage(errorCatalogue[errorName].message, args);
    super(detail);
    this.errorName = errorName;
    this.detail = detail;
    this.more = [];
  }

  get status(): number {
    return errorCatalogue[this.errorName].status;
  }

  get code(): number {
    return errorCatalogue[this.errorName].code;
  }

  with(...others: KilnError[]): this {
    this.more.push(...others);
    return this;
  }
}

/** sprintf-style `%s`/`%d` substitution as Cloud Controller does it; arrays are joined with ", ". */
export function formatMessage(template: string, args: Array<string | number | string[]>): string {
  let i = 0;
  return template.replace(/%[sd]/g, () => {
    const a = args[i++];
    if (a === undefined) return '';
    return Array.isArray(a) ? a.join(', ') : String(a);
  });
}

/** `<Resource> not found`, e.g. notFound('App') → 404 CF-ResourceNotFound "App not found". */
export const notFound = (resource: string) => new KilnError('ResourceNotFound', `${resource} not found`);
export const unprocessable = (detail: string) => new KilnError('UnprocessableEntity', detail);
export const notAuthorized = () => new KilnError('NotAuthorized');
export const badQuery = (detail: string) => new KilnError('BadQueryParameter', detail);
export const uniqueness = (detail: string) => new KilnError('UniquenessError', detail);
export const badRequest = (detail: string) => new KilnError('BadRequest', detail);

/** Raised when an optimistic-concurrency update finds the row changed underneath it. */
export const concurrentUpdate = (resource: string) =>
  unprocessable(`The ${resource} was modified by another request; retry the operation.`);
