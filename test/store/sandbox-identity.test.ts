import { afterEach, describe, expect, it } from 'vitest';
import { SANDBOX_UID_BASE, sandboxIdentity } from '../../src/services/sandbox-identity.ts';
import { openTestStore } from './db.ts';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

async function store() {
  const opened = await openTestStore();
  closers.push(opened.close);
  return opened.store;
}

describe('sandbox identities', () => {
  it('gives an app the same unprivileged uid and gid every time', async () => {
    const s = await store();
    const first = await sandboxIdentity(s, 'app-a');
    expect(first.uid).toBeGreaterThan(SANDBOX_UID_BASE);
    expect(first.gid).toBe(first.uid);
    expect(await sandboxIdentity(s, 'app-a')).toEqual(first);
  });

  it('gives different apps different uids, also when asked concurrently', async () => {
    const s = await store();
    const ids = await Promise.all(['a', 'b', 'c', 'a', 'b', 'c'].map((g) => sandboxIdentity(s, `app-${g}`)));
    expect(new Set(ids.map((i) => i.uid)).size).toBe(3);
    expect(ids[0]).toEqual(ids[3]);
    expect(ids.every((i) => i.uid !== 0 && i.gid !== 0)).toBe(true);
  });
});
