import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { configFile, ConfigFileError, readCliConfig, writeCliConfig } from '../../src/cli/config-store.ts';
import { defaultApi, tokenExpiry, tokenUserGuid } from '../../src/cli/session.ts';

const homes: string[] = [];
afterEach(() => {
  for (const h of homes.splice(0)) fs.rmSync(h, { recursive: true, force: true });
});
function tempHome(): NodeJS.ProcessEnv {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-config-'));
  homes.push(home);
  return { HOME: home };
}

describe('the CLI config file', () => {
  it('lives in $HOME/.kiln/config.json and reads as empty before the first login', async () => {
    const env = tempHome();
    expect(configFile(env)).toBe(path.join(env.HOME!, '.kiln', 'config.json'));
    expect(await readCliConfig(env)).toEqual({});
  });

  it('is written 0600 in a 0700 folder, also over an existing file that was readable by others', async () => {
    const env = tempHome();
    fs.mkdirSync(path.join(env.HOME!, '.kiln'), { mode: 0o700 });
    fs.writeFileSync(configFile(env), '{}', { mode: 0o644 });
    await writeCliConfig({ api: 'http://localhost:9000', accessToken: 'secret' }, env);
    expect(fs.statSync(configFile(env)).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(configFile(env))).mode & 0o777).toBe(0o700);
    expect(await readCliConfig(env)).toEqual({ api: 'http://localhost:9000', accessToken: 'secret' });
    expect(fs.readdirSync(path.dirname(configFile(env)))).toEqual(['config.json']);
  });

  it('says how to recover from a damaged file', async () => {
    const env = tempHome();
    fs.mkdirSync(path.join(env.HOME!, '.kiln'));
    fs.writeFileSync(configFile(env), '{not json');
    await expect(readCliConfig(env)).rejects.toThrow(ConfigFileError);
    await expect(readCliConfig(env)).rejects.toThrow(/run 'kiln login' again/);
    fs.writeFileSync(configFile(env), JSON.stringify({ org: 'not-an-object' }));
    await expect(readCliConfig(env)).rejects.toThrow(/Delete it and run 'kiln login' again/);
  });
});

describe('session helpers', () => {
  const jwt = (claims: object) => `h.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.s`;

  it('reads the expiry and user of a token, and nothing from a token that is not a JWT', () => {
    expect(tokenExpiry(jwt({ exp: 1234 }))).toBe(1234);
    expect(tokenExpiry(`bearer ${jwt({ exp: 99 })}`)).toBe(99);
    expect(tokenExpiry('opaque')).toBeUndefined();
    expect(tokenUserGuid(jwt({ user_id: 'u-1', sub: 's' }))).toBe('u-1');
    expect(tokenUserGuid(jwt({ sub: 's' }))).toBe('s');
  });

  it('picks the API: $KILN_API, then the saved one, then localhost on $PORT or 9000', () => {
    expect(defaultApi({ api: 'http://saved:1' }, { KILN_API: 'kiln.example.com' })).toBe('http://kiln.example.com');
    expect(defaultApi({ api: 'http://saved:1' }, {})).toBe('http://saved:1');
    expect(defaultApi({}, { PORT: '9100' })).toBe('http://localhost:9100');
    expect(defaultApi({}, { PORT: '0' })).toBe('http://localhost:9000');
    expect(defaultApi({}, {})).toBe('http://localhost:9000');
  });
});
