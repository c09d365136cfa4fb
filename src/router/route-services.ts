import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';

/**
 * Route services (issue 9 §5), as gorouter does them: a request for a route bound to a route service goes first
 * to the service's URL, with `X-CF-Forwarded-Url` (where the request was going), `X-CF-Proxy-Signature` (that URL
 * and the time, sealed with the router's key) and `X-CF-Proxy-Metadata` (the seal's nonce). The service sends the
 * request back to the forwarded URL with the two CF headers unchanged; the router opens the signature, checks that
 * it names this URL and is recent, and only then routes to the app.
 */

export const FORWARDED_URL = 'x-cf-forwarded-url';
export const PROXY_SIGNATURE = 'x-cf-proxy-signature';
export const PROXY_METADATA = 'x-cf-proxy-metadata';

/** How long a signature is honoured (gorouter's route_services_timeout defaults to 60 s). */
const SIGNATURE_TTL_MS = 60_000;

export class RouteServiceSigner {
  private readonly key: Buffer;

  constructor(key: Buffer = randomBytes(32)) {
    this.key = key;
  }

  sign(forwardedUrl: string, now = Date.now()): { signature: string; metadata: string } {
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce);
    const body = Buffer.concat([cipher.update(JSON.stringify({ forwarded_url: forwardedUrl, requested_time: now }), 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return { signature: body.toString('base64url'), metadata: Buffer.from(JSON.stringify({ nonce: nonce.toString('base64') })).toString('base64url') };
  }

  /** Whether the pair was made by this router for `forwardedUrl`, less than a minute ago. */
  verify(signature: string | undefined, metadata: string | undefined, forwardedUrl: string, now = Date.now()): boolean {
    if (!signature || !metadata) return false;
    try {
      const { nonce } = JSON.parse(Buffer.from(metadata, 'base64url').toString('utf8')) as { nonce: string };
      const raw = Buffer.from(signature, 'base64url');
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(nonce, 'base64'));
      decipher.setAuthTag(raw.subarray(raw.length - 16));
      const plain = Buffer.concat([decipher.update(raw.subarray(0, raw.length - 16)), decipher.final()]).toString('utf8');
      const sig = JSON.parse(plain) as { forwarded_url: string; requested_time: number };
      return sig.forwarded_url === forwardedUrl && now - sig.requested_time < SIGNATURE_TTL_MS && sig.requested_time <= now + 5_000;
    } catch {
      return false;
    }
  }
}

/** The URL a request was going to, as the route service sees it in X-CF-Forwarded-Url. */
export function forwardedUrlOf(req: http.IncomingMessage, proto: string): string {
  return `${proto}://${req.headers.host ?? ''}${req.url ?? '/'}`;
}

/** Streams the request to the route service with the CF headers, and its answer back to the client. */
export function forwardToRouteService(req: http.IncomingMessage, res: http.ServerResponse, serviceUrl: string, forwardedUrl: string, signer: RouteServiceSigner, onDone: (status: number) => void): void {
  const target = new URL(serviceUrl);
  const { signature, metadata } = signer.sign(forwardedUrl);
  const headers: http.OutgoingHttpHeaders = { ...req.headers, host: target.host, [FORWARDED_URL]: forwardedUrl, [PROXY_SIGNATURE]: signature, [PROXY_METADATA]: metadata };
  delete headers.connection;
  const client = target.protocol === 'https:' ? https : http;
  const out = client.request({ protocol: target.protocol, hostname: target.hostname, port: target.port, method: req.method, path: `${target.pathname}${target.search}`, headers }, (svcRes) => {
    res.writeHead(svcRes.statusCode ?? 502, svcRes.headers);
    svcRes.pipe(res);
    svcRes.on('end', () => onDone(svcRes.statusCode ?? 502));
  });
  out.on('error', () => {
    if (!res.headersSent) {
      res.writeHead(502, { 'content-type': 'text/plain', 'x-cf-routererror': 'route_service_unavailable' });
      res.end('502 Bad Gateway: Route service request failed.\n');
    } else {
      res.destroy();
    }
    onDone(502);
  });
  req.pipe(out);
}
