import type { Context } from 'hono';

export interface Link {
  href: string;
  method?: string;
}

/**
 * The absolute origin (`scheme://host[:port]`) the client used, so every href Kiln emits is absolute
 * (the cf CLI follows `Location` and `pagination.next.href` verbatim). Honours a fronting proxy's
 * X-Forwarded-Proto / X-Forwarded-Host.
 */
export function requestOrigin(c: Context): string {
  const url = new URL(c.req.url);
  const proto = c.req.header('x-forwarded-proto')?.split(',')[0]?.trim() || url.protocol.replace(':', '');
  const host = c.req.header('x-forwarded-host')?.split(',')[0]?.trim() || c.req.header('host') || url.host;
  return `${proto}://${host}`;
}

/** Builds links relative to one origin. */
export class Linker {
  constructor(readonly origin: string) {}

  href(path: string): string {
    return `${this.origin}${path}`;
  }

  link(path: string, method?: string): Link {
    return method ? { href: this.href(path), method } : { href: this.href(path) };
  }
}
