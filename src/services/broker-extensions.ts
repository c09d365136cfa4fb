import { KilnError, unprocessable } from '../domain/errors.ts';
import type { Row } from '../store/schema.ts';
import { BrokerError, callBroker, malformed, unexpectedAnswer, type BrokerConnection, type BrokerResponse } from './broker-client.ts';
import { JobError } from '../lifecycle/jobs.ts';

/**
 * Kiln's two extensions of the Open Service Broker API (docs/service-extensions.md): an offering declares what it
 * supports in its catalog entry's `metadata.features` (an array of strings), the way Cloud Controller already reads
 * platform features such as `shareable` from the offering's `metadata` — which Kiln stores whole
 * (`service_offerings.catalog_metadata`), so the catalog sync needs no change to learn about them.
 */
export type BrokerFeature = 'backups' | 'plan_definitions';

export function offeringSupports(offering: Pick<Row<'service_offerings'>, 'catalog_metadata'>, feature: BrokerFeature): boolean {
  try {
    const meta = JSON.parse(offering.catalog_metadata) as { features?: unknown };
    return Array.isArray(meta.features) && meta.features.includes(feature);
  } catch {
    return false;
  }
}

const FEATURE_TEXT: Record<BrokerFeature, string> = { backups: 'backups', plan_definitions: 'plan definitions' };

/** The 422 for an offering without the feature (issue 15: "an offering without the feature gets a 422 that says so"). */
export function requireFeatureOf(offering: Pick<Row<'service_offerings'>, 'name' | 'catalog_metadata'>, feature: BrokerFeature): void {
  if (!offeringSupports(offering, feature)) {
    throw unprocessable(`The service offering '${offering.name}' does not support ${FEATURE_TEXT[feature]}.`);
  }
}

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A broker call made while answering an API request: a failure to reach the broker, or an answer it should not
 * give, becomes the CF error (502) a client sees at once. `accept` lists the statuses the caller handles itself.
 */
export async function callBrokerNow(conn: BrokerConnection, method: string, path: string, timeoutMs: number, userGuid: string | null, accept: number[], body?: unknown): Promise<BrokerResponse> {
  let res: BrokerResponse;
  try {
    res = await callBroker(conn, method, path, { timeoutMs, userGuid, body });
  } catch (err) {
    if (err instanceof BrokerError) throw new KilnError('ServiceBrokerRequestRejected', err.detail);
    throw err;
  }
  if (accept.includes(res.status)) return res;
  if (res.status >= 400 && res.status < 500) throw new KilnError('ServiceBrokerRequestRejected', `${res.status}${isObject(res.json) && typeof res.json.description === 'string' ? `: ${res.json.description}` : ''}`);
  throw new KilnError('ServiceBrokerRequestMalformed');
}

/** A broker call made by a job: failures become the job's error (CF-<class>, as for instance operations). */
export async function callBrokerInJob(conn: BrokerConnection, method: string, path: string, timeoutMs: number, userGuid: string | null, opts: { body?: unknown; query?: Record<string, string> } = {}): Promise<BrokerResponse> {
  try {
    return await callBroker(conn, method, path, { timeoutMs, userGuid, body: opts.body, query: opts.query });
  } catch (err) {
    if (err instanceof BrokerError) throw new JobError(err.title, err.detail, err.code);
    throw err;
  }
}

/** The job error for an answer the job cannot use. */
export function jobFailure(res: BrokerResponse, what?: string): JobError {
  const e = res.status >= 200 && res.status < 300 && what ? malformed(res, what) : unexpectedAnswer(res);
  return new JobError(e.title, e.detail, e.code);
}
