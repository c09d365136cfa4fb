import { sql } from 'kysely';
import { seedApps, start } from './api.ts';
const target = await start(false);
const space = await seedApps(target, 1000);
const db = target.kiln.store.db;
const qs = (process.env.Q ?? '').replaceAll('{space}', `'${space}'`).split(';;').filter(Boolean);
for (const q of qs) {
  console.log('\n' + q);
  const plan = await sql.raw(`explain query plan ${q}`).execute(db);
  for (const r of plan.rows as Array<Record<string, unknown>>) console.log('   ', r.detail ?? JSON.stringify(r));
  for (let i = 0; i < 20; i++) await sql.raw(q).execute(db);
  const t = performance.now();
  for (let i = 0; i < 100; i++) await sql.raw(q).execute(db);
  console.log(`   ${((performance.now() - t) / 100).toFixed(3)} ms`);
}
await target.close();
