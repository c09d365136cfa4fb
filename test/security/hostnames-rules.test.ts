import { afterEach, describe, expect, it } from 'vitest';
import { domainNameErrors, looksLikeIpAddress, reservedDomainProblem } from '../../src/domain/domains.ts';
import { apiHostNames } from '../../src/router/api-hosts.ts';
import { createFrontDoor } from '../../src/router/front-door.ts';
import { Router } from '../../src/router/router.ts';
import { backendAt } from '../router/helpers.ts';

const platform = apiHostNames({ systemDomain: 'SYS.Example.com', listenHost: '192.0.2.7', interfaceAddresses: ['10.1.2.3', 'fe80::1'] });
const names = { systemDomain: platform.systemDomain, apiHosts: platform.names };

describe('API host names', () => {
  it('cover the system domain, its CF hosts, localhost, loopback, listen and interface addresses', () => {
    expect([...platform.names].sort()).toEqual(
      ['0.0.0.0', '10.1.2.3', '127.0.0.1', '192.0.2.7', '::', '::1', 'api.sys.example.com', 'fe80::1', 'localhost', 'login.sys.example.com', 'sys.example.com', 'uaa.sys.example.com'].sort(),
    );
  });

  it('leave a wildcard listen address out (every interface is listed instead)', () => {
    expect(apiHostNames({ systemDomain: 'localhost', listenHost: '0.0.0.0' }).names.has('')).toBe(false);
  });
});

describe('domain names', () => {
  it.each(['127.0.0.1', '10.1', 'a.b.255', 'kiln.0x7F', 'x.0x'])('reads %s as an IP address', (name) => {
    expect(looksLikeIpAddress(name)).toBe(true);
    expect(domainNameErrors(name)).toContain('Name must not be an IP address');
  });

  it.each(['example.com', 'a1.b2', '123.example.com', 'x.io'])('does not read %s as an IP address', (name) => {
    expect(looksLikeIpAddress(name)).toBe(false);
  });

  it('checks labels, length and charset as Cloud Controller does', () => {
    expect(domainNameErrors(`${'a'.repeat(64)}.com`)).toContain('Name subdomains must each be at most 63 characters');
    expect(domainNameErrors(`${'a.'.repeat(127)}com`)).toContain('Name is too long (maximum is 253 characters)');
    expect(domainNameErrors('exa_mple.com')).toContain('Name must consist of alphanumeric characters and hyphens');
    expect(domainNameErrors('localhost')).toContain('Name must contain at least one "."');
    expect(domainNameErrors('-bad.com')).toContain('Name does not comply with RFC 1035 standards');
    expect(domainNameErrors('good.example.com')).toEqual([]);
  });

  it('reserves the system domain and what is under it for private domains', () => {
    for (const name of ['sys.example.com', 'app.sys.example.com', 'SYS.EXAMPLE.COM']) {
      expect(reservedDomainProblem(name, names, true)).toBe(`The domain name "${name}" is reserved and cannot be used for org-scoped domains.`);
    }
    expect(reservedDomainProblem('example.com', names, true)).toBeDefined();
    expect(reservedDomainProblem('other.example.com', names, true)).toBeUndefined();
  });

  it('lets the admin share domains around the system domain, but not an API host itself', () => {
    expect(reservedDomainProblem('example.com', names, false)).toBeUndefined();
    expect(reservedDomainProblem('apps.sys.example.com', names, false)).toBeUndefined();
    expect(reservedDomainProblem('api.sys.example.com', names, false)).toBe('The domain name "api.sys.example.com" is reserved by the platform.');
  });
});

describe('front door host matching', () => {
  const routers: Router[] = [];
  afterEach(() => {
    for (const r of routers.splice(0)) r.close();
  });

  const door = () => {
    const router = new Router();
    routers.push(router);
    for (const host of ['localhost', 'sys.example.com', '*.example.com', 'app.apps.example.com']) router.table.setBackends(host, [backendAt(host, 1)]);
    return createFrontDoor({ api: () => {}, router, appsDomains: ['apps.example.com'], apiHosts: [...platform.names] });
  };

  it.each(['localhost', 'LocalHost:9000', 'localhost.', '127.0.0.1:80', '[::1]:9000', 'sys.example.com', 'SYS.example.com.:443', '10.1.2.3'])(
    'sends the API host %s to the API whatever routes exist',
    (host) => {
      expect(door().isRouted(host)).toBe(false);
    },
  );

  it.each(['x.apps.example.com..', 'apps.example.com', 'APPS.example.com.', 'app.apps.example.com:9000', 'other.example.com'])(
    'sends the app host %s to the router',
    (host) => {
      expect(door().isRouted(host)).toBe(true);
    },
  );
});
