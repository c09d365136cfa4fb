import type { Kysely } from 'kysely';
import type { ResourceTable } from './schema.ts';
import { ENV_VAR_COLUMNS, isSealed } from './env-vars.ts';
import type { Store } from './store.ts';

/** Every column holding a sealed JSON secret (see secret-box.ts). */
const SEALED: ReadonlyArray<readonly [ResourceTable, readonly string[]]> = [
  ['service_brokers', ['auth_enc']],
  ['service_instances', ['credentials_enc', 'parameters_enc', 'pending_update_enc']],
  ['service_credential_bindings', ['credentials_enc', 'parameters_enc']],
  ['service_route_bindings', ['parameters_enc']],
];

/**
 * Key rotation, step two: re-seals under the current key every value still sealed under a previous one, so the
 * old key can be dropped from KILN_ENCRYPTION_KEY_PREVIOUS after one start. Runs at start-up; idempotent, and a
 * crash half-way leaves values readable under either key. Returns how many values were re-sealed.
 */
export async function rewrapSecrets(store: Store): Promise<number> {
  const box = store.secrets;
  let n = 0;
  for (const [table, columns] of SEALED) {
    // The sealed columns are plain text columns of several tables; kysely cannot type them generically.
    const db = store.db as unknown as Kysely<Record<string, Record<string, string | null>>>;
    const rows = await db.selectFrom(table).select(['guid', ...columns]).execute();
    for (const row of rows) {
      const patch: Record<string, string> = {};
      for (const col of columns) {
        const v = row[col];
        if (v && box.isStale(v)) patch[col] = box.seal(box.open(v));
      }
      if (Object.keys(patch).length === 0) continue;
      await store.write((tx) => tx.reseal(table, row.guid!, patch));
      n += Object.keys(patch).length;
    }
  }
  // Registry credentials bind their row's guid as context.
  const creds = await store.db.selectFrom('registry_credentials').select(['guid', 'secret_ciphertext']).execute();
  for (const row of creds) {
    if (!box.isStale(row.secret_ciphertext)) continue;
    const resealed = box.seal(box.open(row.secret_ciphertext, row.guid), row.guid);
    await store.write((tx) => tx.reseal('registry_credentials', row.guid, { secret_ciphertext: resealed }));
    n++;
  }
  return n + (await sealEnvVarColumns(store, true));
}

/**
 * Seals the app environment variables that are still plain JSON (written before they were sealed, env-vars.ts),
 * and with `rewrap` also re-seals those under a previous key. Runs at every start; idempotent, row by row.
 */
export async function sealEnvVarColumns(store: Store, rewrap = false): Promise<number> {
  const box = store.secrets;
  const db = store.db as unknown as Kysely<Record<string, Record<string, string | null>>>;
  let n = 0;
  for (const [table, column] of ENV_VAR_COLUMNS) {
    let q = db.selectFrom(table).select(['guid', column]).where(column, 'is not', null);
    if (!rewrap) q = q.where(column, 'not like', 'v1:%');
    for (const row of await q.execute()) {
      const v = row[column]!;
      let resealed: string;
      if (!isSealed(v)) resealed = box.seal(v);
      else if (box.isStale(v)) resealed = box.seal(box.open(v));
      else continue;
      // Only if nobody changed it meanwhile: a concurrent write has sealed its own value.
      await store.write((tx) => tx.reseal(table, row.guid!, { [column]: resealed }, { [column]: v }));
      n++;
    }
  }
  return n;
}
