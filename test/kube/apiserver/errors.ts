/**
 * Kubernetes `Status` failures (meta/v1) with the reason/code pairs the real API server uses, so clients
 * (kubectl, client-node) take the same branches they would against a cluster: `NotFound` 404, `AlreadyExists`
 * 409, `Conflict` 409, `Invalid` 422, `BadRequest` 400, `Gone` / `Expired` 410, `MethodNotAllowed` 405,
 * `UnsupportedMediaType` 415, `Forbidden` 403.
 */
export type Reason =
  | 'NotFound'
  | 'AlreadyExists'
  | 'Conflict'
  | 'Invalid'
  | 'BadRequest'
  | 'Gone'
  | 'Expired'
  | 'MethodNotAllowed'
  | 'UnsupportedMediaType'
  | 'Forbidden'
  | 'NotAcceptable'
  | 'InternalError';

const CODES: Record<Reason, number> = {
  NotFound: 404,
  AlreadyExists: 409,
  Conflict: 409,
  Invalid: 422,
  BadRequest: 400,
  Gone: 410,
  Expired: 410,
  MethodNotAllowed: 405,
  UnsupportedMediaType: 415,
  Forbidden: 403,
  NotAcceptable: 406,
  InternalError: 500,
};

export interface StatusCause {
  reason?: string;
  message: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  causes?: StatusCause[];
}

export class KubeError extends Error {
  readonly code: number;
  constructor(
    readonly reason: Reason,
    message: string,
    readonly details: StatusDetails = {},
  ) {
    super(message);
    this.code = CODES[reason];
  }

  toStatus(): Record<string, unknown> {
    return {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      reason: this.reason,
      details: Object.keys(this.details).length > 0 ? this.details : undefined,
      code: this.code,
    };
  }
}

/** `pods "x"` / `apps.kiln.dev "x"` — how the real server names a resource in messages. */
export function qualified(plural: string, group: string): string {
  return group ? `${plural}.${group}` : plural;
}

export const notFound = (plural: string, group: string, kind: string, name: string) =>
  new KubeError('NotFound', `${qualified(plural, group)} "${name}" not found`, { name, group, kind: plural });

export const alreadyExists = (plural: string, group: string, name: string) =>
  new KubeError('AlreadyExists', `${qualified(plural, group)} "${name}" already exists`, { name, group, kind: plural });

export const conflict = (plural: string, group: string, name: string, why = 'the object has been modified; please apply your changes to the latest version and try again') =>
  new KubeError('Conflict', `Operation cannot be fulfilled on ${qualified(plural, group)} "${name}": ${why}`, { name, group, kind: plural });

export const invalid = (kind: string, group: string, name: string, causes: StatusCause[]) =>
  new KubeError(
    'Invalid',
    `${kind}${group ? `.${group}` : ''} "${name}" is invalid: ${causes.map((c) => (c.field ? `${c.field}: ${c.message}` : c.message)).join(', ')}`,
    { name, group, kind, causes: causes.map((c) => ({ reason: c.reason ?? 'FieldValueInvalid', message: c.message, field: c.field })) },
  );

export const badRequest = (message: string) => new KubeError('BadRequest', message);
