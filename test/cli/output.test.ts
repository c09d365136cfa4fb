import { describe, expect, it } from 'vitest';
import { formatMem, formatUptime, parseSizeMb, table, withSpinner } from '../../src/cli/output.ts';
import type { CliIO } from '../../src/cli/session.ts';

function io(isTTY: boolean, env: NodeJS.ProcessEnv = {}): CliIO & { text: () => string } {
  const chunks: string[] = [];
  return { out: { write: (c: string) => chunks.push(c), isTTY }, err: { write: () => true }, env, text: () => chunks.join('') };
}

describe('CLI output', () => {
  it('prints tables like cf: no borders, columns aligned three spaces apart, no trailing blanks', () => {
    const out = table(io(false), ['name', 'requested state', 'routes'], [
      ['node-hello', 'started', 'node-hello.apps.localhost'],
      ['x', 'stopped', ''],
    ]);
    expect(out).toBe(
      ['name         requested state   routes', 'node-hello   started           node-hello.apps.localhost', 'x            stopped', ''].join('\n'),
    );
  });

  it('colours table headers only on a terminal without NO_COLOR', () => {
    expect(table(io(true), ['name'], [['a']])).toContain('\x1b[1m');
    expect(table(io(true, { NO_COLOR: '1' }), ['name'], [['a']])).not.toContain('\x1b[');
    expect(table(io(false), ['name'], [['a']])).not.toContain('\x1b[');
  });

  it('animates a spinner on a terminal while waiting and clears its line afterwards', async () => {
    const tty = io(true);
    const result = await withSpinner(tty, 'Waiting for app to start...', async (update) => {
      await new Promise((r) => setTimeout(r, 250));
      update('1 of 2 running');
      await new Promise((r) => setTimeout(r, 200));
      return 42;
    });
    expect(result).toBe(42);
    const frames = tty.text().split('\r\x1b[2K').filter((f) => f !== '');
    expect(frames.length).toBeGreaterThan(3);
    expect(frames[0]).toMatch(/^. Waiting for app to start\.\.\.$/);
    expect(frames.some((f) => f.endsWith('1 of 2 running'))).toBe(true);
    expect(tty.text().endsWith('\r\x1b[2K')).toBe(true);
  });

  it('prints the wait once, without escape codes, when not on a terminal', async () => {
    const plain = io(false);
    await withSpinner(plain, 'Deleting...', async (update) => update('ignored'));
    expect(plain.text()).toBe('Deleting...\n');
  });

  it('reads sizes as cf does and prints memory and uptime compactly', () => {
    expect(parseSizeMb('256M', '-m')).toBe(256);
    expect(parseSizeMb('1G', '-m')).toBe(1024);
    expect(parseSizeMb('512', '-k')).toBe(512);
    expect(() => parseSizeMb('lots', '-m')).toThrow("Invalid value for -m: 'lots'. Use a size like 256M or 1G.");
    expect(formatMem(128 * 1024 * 1024)).toBe('128M');
    expect(formatMem(1.5 * 1024 ** 3)).toBe('1.5G');
    expect(formatUptime(59)).toBe('59s');
    expect(formatUptime(3 * 60 + 7)).toBe('3m07s');
    expect(formatUptime(2 * 3600 + 5 * 60)).toBe('2h05m');
    expect(formatUptime(86400 * 2 + 3600)).toBe('2d01h');
  });
});
