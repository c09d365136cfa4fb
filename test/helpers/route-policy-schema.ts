import { Ajv2020 } from 'ajv/dist/2020.js';
import { expect } from 'vitest';
import { ROUTE_POLICY_SCHEMA } from '../../src/api/presenters/route-policy.ts';
import type { ApiResponse, Client } from './harness.ts';

/**
 * Route policies are not in the vendored openapi.json (OPERATIONS.md cross-check), so their responses are
 * validated here against ROUTE_POLICY_SCHEMA (written from CC's V3 docs) and CC's list envelope; errors must be
 * CF error documents like every other response.
 */
const ajv = new Ajv2020({ strict: false, allErrors: true });
const one = ajv.compile(ROUTE_POLICY_SCHEMA);
const list = ajv.compile({
  type: 'object',
  required: ['pagination', 'resources'],
  properties: {
    pagination: {
      type: 'object',
      required: ['total_results', 'total_pages', 'first', 'last', 'next', 'previous'],
      properties: { total_results: { type: 'integer' }, total_pages: { type: 'integer' } },
    },
    resources: { type: 'array', items: ROUTE_POLICY_SCHEMA },
    included: { type: 'object' },
  },
});
const errorDocument = ajv.compile({
  type: 'object',
  required: ['errors'],
  properties: {
    errors: {
      type: 'array',
      minItems: 1,
      items: { type: 'object', required: ['detail', 'title', 'code'], properties: { detail: { type: 'string' }, title: { type: 'string' }, code: { type: 'integer' } } },
    },
  },
});

export function routePolicyProblems(method: string, url: string, status: number, body: unknown): string[] {
  if (status >= 400) return errorDocument(body) ? [] : [`not a CF error document: ${JSON.stringify(body)}`];
  if (status === 204) return body === '' || body === undefined ? [] : ['204 with a body'];
  const isList = method === 'GET' && /^\/v3\/route_policies(\?|$)/.test(url);
  const validate = isList ? list : one;
  let subject = body;
  if (!isList && body !== null && typeof body === 'object' && 'included' in body) {
    // A single policy with `include=` carries `included` beside the resource, as every CF resource does.
    const { included, ...rest } = body as Record<string, unknown>;
    if (included === null || typeof included !== 'object') return ['included is not an object'];
    subject = rest;
  }
  if (validate(subject)) return [];
  return (validate.errors ?? []).map((e) => `${method} ${url} ${status}: ${e.instancePath || '(root)'} ${e.message ?? e.keyword}`);
}

/** The client's calls to /v3/route_policies, each response checked against the route policy schema. */
export function routePolicyClient(client: Client) {
  const call = async (method: string, url: string, body?: unknown): Promise<ApiResponse> => {
    // Not in openapi.json: checked against ROUTE_POLICY_SCHEMA below instead.
    const res = await client.request(method, url, body, { skipSpec: true });
    expect(routePolicyProblems(method, url, res.status, res.body), `${method} ${url} → ${res.status} ${res.text.slice(0, 300)}`).toEqual([]);
    return res;
  };
  return {
    list: (query = '') => call('GET', `/v3/route_policies${query}`),
    get: (guid: string, query = '') => call('GET', `/v3/route_policies/${guid}${query}`),
    create: (body: unknown) => call('POST', '/v3/route_policies', body),
    update: (guid: string, body: unknown) => call('PATCH', `/v3/route_policies/${guid}`, body),
    remove: (guid: string) => call('DELETE', `/v3/route_policies/${guid}`),
  };
}
