import https from 'node:https';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import type { InstanceIdentityCA } from '../identity/instance-identity.ts';
import { normalizeHost } from './route-table.ts';
import type { Router } from './router.ts';

/**
 * The router's mutual-TLS listener (route policies, issue 12 item 17): the same router as the plain port, over
 * TLS that asks every client for a certificate and verifies it against Kiln's instance identity CA. A client
 * without one (or with a foreign, expired or forged one) still connects; the router then refuses it on routes
 * that enforce route policies (403) and serves it elsewhere, as gorouter's mTLS domains do per route.
 *
 * The server certificate is issued by the same CA for whatever name the client asks for (SNI), so an app that
 * trusts CF_SYSTEM_CERT_PATH can call `https://<route>:<port>` for any route; certificates are kept per name
 * and replaced before they expire.
 */

const HOSTNAME = /^(?=.{1,253}$)(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*$/;
const MAX_CONTEXTS = 512;

export interface MtlsListenerOptions {
  router: Router;
  ca: InstanceIdentityCA;
  /** Names on the certificate served to clients that send no SNI (or an IP address). */
  defaultNames: string[];
}

export async function createMtlsServer(opts: MtlsListenerOptions): Promise<https.Server> {
  const { ca, router } = opts;
  const contexts = new Map<string, { context: tls.SecureContext; renewAt: number }>();
  const contextFor = async (names: string[]): Promise<tls.SecureContext> => {
    const key = names.join(',');
    const cached = contexts.get(key);
    if (cached && cached.renewAt > Date.now()) return cached.context;
    const cred = await ca.serverCredential(names);
    const context = tls.createSecureContext({ key: cred.keyPem, cert: cred.certPem, ca: [ca.caCertPem] });
    if (contexts.size >= MAX_CONTEXTS) contexts.delete(contexts.keys().next().value!);
    contexts.set(key, { context, renewAt: cred.notAfter.getTime() - ca.lifetimeMs / 4 });
    return context;
  };
  const fallback = await ca.serverCredential(opts.defaultNames);
  const server = https.createServer(
    {
      key: fallback.keyPem,
      cert: fallback.certPem,
      ca: [ca.caCertPem],
      requestCert: true,
      // Verification failures are decided per route (403 on enforcing routes), not by closing the connection.
      rejectUnauthorized: false,
      SNICallback: (servername, cb) => {
        const name = normalizeHost(servername);
        if (!HOSTNAME.test(name)) {
          cb(null, undefined);
          return;
        }
        contextFor([name]).then(
          (context) => cb(null, context),
          (err: Error) => cb(err, undefined),
        );
      },
    },
    router.handle,
  );
  server.on('upgrade', router.handleUpgrade);
  return server;
}

/**
 * Listens on `port`; with `fallbackToFree` a taken port is replaced by a free one (the default 9443 must not
 * stop a second Kiln on the same machine from starting).
 */
export async function listenMtls(server: https.Server, host: string, port: number, fallbackToFree: boolean): Promise<number> {
  const attempt = (p: number) =>
    new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.once('error', onError);
      server.listen(p, host, () => {
        server.off('error', onError);
        resolve();
      });
    });
  try {
    await attempt(port);
  } catch (err) {
    if (!fallbackToFree || (err as { code?: string }).code !== 'EADDRINUSE') throw err;
    await attempt(0);
  }
  return (server.address() as AddressInfo).port;
}
