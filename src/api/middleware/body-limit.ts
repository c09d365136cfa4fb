import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { KilnError } from '../../domain/errors.ts';
import { renderErrors } from '../cf/errors.ts';
import type { Env } from '../context.ts';

/** Form and SCIM bodies of the identity provider (UAA's own are a few hundred bytes). */
export const IDENTITY_BODY_BYTES = 64 * 1024;

/**
 * A request body over its limit: 413 with a CF error document. The catalogue has no entry for it (upstream,
 * nginx answers before Cloud Controller sees the request), so it reuses MessageParseError's title and code.
 */
export class BodyTooLargeError extends KilnError {
  readonly limit: number;
  constructor(limit: number) {
    super('MessageParseError', `the request body is larger than ${limit} bytes`);
    this.limit = limit;
  }

  override get status(): number {
    return 413;
  }
}

// Bodies that keep their own limits: uploads stream to disk up to KILN_MAX_PACKAGE_BYTES (multipart only), and
// manifests answer CC's 400 "Manifest size is too large" past 1 MB.
const UPLOAD = /^\/v3\/(packages|droplets|buildpacks)\/[^/]+\/upload\/?$/;
const MANIFEST = /^\/v3\/spaces\/[^/]+\/(actions\/apply_manifest|manifest_diff)\/?$/;
// The Tsuru API's deploy upload (multipart `file`), capped by KILN_MAX_PACKAGE_BYTES as it streams to disk.
const TSURU_DEPLOY = /^\/tsuru(\/[0-9]+(\.[0-9]+)*)?\/apps\/[^/]+\/deploy\/?$/;
const IDENTITY = /^\/(oauth\/token|login|Users|oauth\/clients|userinfo)(\/|$)/;

/**
 * Caps every request body before it is read: a declared Content-Length over the limit is refused without
 * reading a byte, and a chunked body is counted as it streams and refused at the limit (so at most `limit`
 * bytes are ever held). The connection is closed after a 413, leaving the rest of the body unread.
 */
export function requestBodyLimits(opts: { jsonBytes: number; identityBytes?: number }): MiddlewareHandler<Env> {
  const refuse = (limit: number) => (c: Context<Env>) => {
    c.header('Connection', 'close');
    return renderErrors(c, new BodyTooLargeError(limit));
  };
  const identityBytes = opts.identityBytes ?? IDENTITY_BODY_BYTES;
  const json = bodyLimit({ maxSize: opts.jsonBytes, onError: refuse(opts.jsonBytes) });
  const identity = bodyLimit({ maxSize: identityBytes, onError: refuse(identityBytes) });
  return async (c, next) => {
    // A GET or HEAD has no body (the fetch Request says null); asking the Request for it would build a whole
    // undici Request with its AbortController first — about a tenth of a list request's CPU.
    const method = c.req.method;
    if (method === 'GET' || method === 'HEAD' || !c.req.raw.body) return next();
    const path = c.req.path;
    if (MANIFEST.test(path)) return next();
    if ((UPLOAD.test(path) || TSURU_DEPLOY.test(path)) && /^multipart\/form-data/i.test(c.req.header('content-type') ?? '')) return next();
    return IDENTITY.test(path) ? identity(c, next) : json(c, next);
  };
}
