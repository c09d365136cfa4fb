import { describe, expect, it } from 'vitest';
import { hashPassword, verifyPassword } from '../../src/identity/passwords.ts';
import { parseScimFilter } from '../../src/identity/scim-filter.ts';

describe('password hashes', () => {
  it('verifies the right password only, with a fresh salt each time', async () => {
    const a = await hashPassword('correct horse');
    const b = await hashPassword('correct horse');
    expect(a).not.toBe(b);
    expect(a).toMatch(/^scrypt\$16384\$8\$1\$/);
    expect(a).not.toContain('correct horse');
    expect(await verifyPassword('correct horse', a)).toBe(true);
    expect(await verifyPassword('correct horse ', a)).toBe(false);
    expect(await verifyPassword('', a)).toBe(false);
  });

  it('never verifies against an empty or malformed hash', async () => {
    expect(await verifyPassword('', '')).toBe(false);
    expect(await verifyPassword('x', 'plain-text')).toBe(false);
    expect(await verifyPassword('x', 'scrypt$1$2$3$4')).toBe(false);
  });
});

describe('SCIM filters', () => {
  const bob = { username: 'bob', origin: 'uaa', id: 'g-1', email: 'bob@example.com' };
  const ann = { username: 'ann', origin: 'ldap', id: 'g-2', email: null };

  it('matches eq case-insensitively, with and binding tighter than or', () => {
    const f = parseScimFilter('userName eq "BOB" and origin eq "uaa" or id eq "g-2"');
    expect(f(bob)).toBe(true);
    expect(f(ann)).toBe(true);
    expect(f({ ...bob, origin: 'ldap' })).toBe(false);
  });

  it('supports co, sw and pr, and escaped quotes', () => {
    expect(parseScimFilter('email co "example"')(bob)).toBe(true);
    expect(parseScimFilter('username sw "a"')(ann)).toBe(true);
    expect(parseScimFilter('email pr')(ann)).toBe(false);
    expect(parseScimFilter('username eq "a\\"b"')({ username: 'a"b' })).toBe(true);
  });

  it('rejects what it cannot parse', () => {
    for (const bad of ['', 'userName', 'userName eq bob', 'userName eq "a" xor id eq "b"', 'userName eq "a" and']) {
      expect(() => parseScimFilter(bad), bad).toThrow(/Invalid filter/);
    }
  });
});
