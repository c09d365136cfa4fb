import { describe, expect, it } from 'vitest';
import { formatAccessTime } from '../../src/router/access-log.ts';

describe('formatAccessTime', () => {
  it('formats UTC with milliseconds, reusing the date part only within the same second', () => {
    const base = Date.UTC(2024, 4, 1, 10, 0, 0);
    expect(formatAccessTime(base + 7)).toBe('2024-05-01T10:00:00.007+0000');
    expect(formatAccessTime(base + 999)).toBe('2024-05-01T10:00:00.999+0000');
    expect(formatAccessTime(base + 1_000)).toBe('2024-05-01T10:00:01.000+0000');
    expect(formatAccessTime(base + 42.9)).toBe('2024-05-01T10:00:00.042+0000');
    expect(formatAccessTime(Date.UTC(2031, 11, 31, 23, 59, 59, 50))).toBe('2031-12-31T23:59:59.050+0000');
    expect(formatAccessTime(base + 12)).toBe('2024-05-01T10:00:00.012+0000');
  });
});
