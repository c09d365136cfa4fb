import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestKiln, type TestKiln } from '../helpers/harness.ts';

let t: TestKiln;
beforeAll(async () => {
  t = await createTestKiln();
});
afterAll(() => t.close());

describe('POST /v3/admin/actions/clear_buildpack_cache', () => {
  it('is a job for admins that completes', async () => {
    const res = await t.admin.post('/v3/admin/actions/clear_buildpack_cache');
    expect(res.status).toBe(202);
    const job = await t.awaitJob(res.headers.get('location'));
    expect(job).toMatchObject({ operation: 'buildpack_cache.delete', state: 'COMPLETE' });
  });

  it('is refused to everyone else', async () => {
    const user = await t.user();
    expect((await user.post('/v3/admin/actions/clear_buildpack_cache')).status).toBe(403);
  });
});
