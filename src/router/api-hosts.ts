/**
 * The host names Kiln's own API is reached by. They belong to the platform: the front door always sends them to
 * the API (never to an app, whatever routes exist), and no tenant may create a domain or route that names them —
 * otherwise an app could receive other users' bearer tokens.
 */
import os from 'node:os';
import type { PlatformNames } from '../domain/domains.ts';
import { normalizeHost } from './route-table.ts';

export interface ApiHosts {
  /** The configured system domain (lowercase). */
  readonly systemDomain: string;
  /** Every API host name, normalized (lowercase, no port, no trailing dot, IPv6 without brackets). */
  readonly names: ReadonlySet<string>;
}

const WILDCARD_LISTEN = new Set(['0.0.0.0', '::', '']);

/**
 * API hosts from configuration and the machine's addresses: the system domain and CF's well-known hosts under it
 * (`api.`, `uaa.`, `login.`), `localhost`, the loopback and wildcard addresses, the listen address, and every
 * address of a local interface (a listener on 0.0.0.0 is reached by all of them).
 */
export function apiHostNames(opts: { systemDomain: string; listenHost?: string; interfaceAddresses?: readonly string[] }): ApiHosts {
  const sd = normalizeHost(opts.systemDomain);
  const names = new Set<string>([sd, `api.${sd}`, `uaa.${sd}`, `login.${sd}`, 'localhost', '127.0.0.1', '::1', '0.0.0.0', '::']);
  const listen = normalizeHost(opts.listenHost ?? '');
  if (!WILDCARD_LISTEN.has(listen)) names.add(listen);
  for (const address of opts.interfaceAddresses ?? []) names.add(normalizeHost(address));
  names.delete('');
  return { systemDomain: sd, names };
}

/** Addresses of the machine's network interfaces (IPv6 zone ids dropped). */
export function localInterfaceAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(os.networkInterfaces())) {
    for (const info of list ?? []) out.push(info.address.replace(/%.*$/, ''));
  }
  return out;
}

const cache = new WeakMap<object, ApiHosts>();

/** The API hosts of a running configuration (computed once per config object). */
export function apiHostsOf(config: { systemDomain: string; host: string }): ApiHosts {
  let hosts = cache.get(config);
  if (!hosts) {
    hosts = apiHostNames({ systemDomain: config.systemDomain, listenHost: config.host, interfaceAddresses: localInterfaceAddresses() });
    cache.set(config, hosts);
  }
  return hosts;
}

/** The names domains and routes may not claim, for the domain and route rules. */
export function platformNamesOf(config: { systemDomain: string; host: string }): PlatformNames {
  const hosts = apiHostsOf(config);
  return { systemDomain: hosts.systemDomain, apiHosts: hosts.names };
}

/** Whether a Host header value (any case, with a port or one trailing dot) names the API. */
export function isApiHost(hosts: ApiHosts, hostHeader: string): boolean {
  return hosts.names.has(normalizeHost(hostHeader));
}
