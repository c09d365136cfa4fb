/**
 * Who is calling, as an instance identity certificate (see instance-identity.ts) names it, and whether a route
 * policy admits them. Kept apart from the CA so the router loads no certificate-building code.
 */

/** The caller an instance certificate names (OU `app:`, `space:`, `organization:`), as gorouter reads it. */
export interface CallerIdentity {
  appGuid: string;
  spaceGuid?: string;
  organizationGuid?: string;
}

/**
 * The identity in a peer certificate's subject, as gorouter's identity handler reads it: OUs `app:`, `space:`,
 * `organization:`; no app OU → no identity. `ou` is node's `getPeerCertificate().subject.OU` (string or array).
 */
export function callerIdentityOf(ou: string | string[] | undefined): CallerIdentity | undefined {
  const units = ou === undefined ? [] : Array.isArray(ou) ? ou : [ou];
  let appGuid: string | undefined;
  let spaceGuid: string | undefined;
  let organizationGuid: string | undefined;
  for (const unit of units) {
    if (unit.startsWith('app:') && unit.length > 4) appGuid = unit.slice(4);
    else if (unit.startsWith('space:') && unit.length > 6) spaceGuid = unit.slice(6);
    else if (unit.startsWith('organization:') && unit.length > 13) organizationGuid = unit.slice(13);
  }
  if (!appGuid) return undefined;
  return { appGuid, ...(spaceGuid ? { spaceGuid } : {}), ...(organizationGuid ? { organizationGuid } : {}) };
}

/**
 * gorouter's evaluateRoutePolicies: `cf:any` admits any identified caller, `cf:app|space|org:<guid>` a caller
 * whose certificate names that app, space or org. Returns the matching source, or undefined.
 */
export function matchingSource(sources: readonly string[], caller: CallerIdentity): string | undefined {
  for (const source of sources) {
    if (source === 'cf:any') return source;
    if (source.startsWith('cf:app:') && source.slice(7) === caller.appGuid) return source;
    if (source.startsWith('cf:space:') && caller.spaceGuid && source.slice(9) === caller.spaceGuid) return source;
    if (source.startsWith('cf:org:') && caller.organizationGuid && source.slice(7) === caller.organizationGuid) return source;
  }
  return undefined;
}
