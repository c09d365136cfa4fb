import { describe, expect, it } from 'vitest';
import { randomRouteHost, randomWords } from '../../src/domain/random-route.ts';

describe('random route hosts', () => {
  it('are the app name, an adjective, a noun and two different letters, in lower case', () => {
    for (let i = 0; i < 200; i++) {
      const host = randomRouteHost('My-App');
      const m = host.match(/^my-app-([a-z]+)-([a-z]+)-([a-z])([a-z])$/);
      expect(m, host).not.toBeNull();
      expect(m![3]).not.toBe(m![4]);
    }
  });

  it('vary from call to call', () => {
    const seen = new Set(Array.from({ length: 50 }, () => randomWords()));
    expect(seen.size).toBeGreaterThan(10);
  });
});
