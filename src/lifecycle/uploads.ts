/** Package uploads this process is receiving, and the crash rule for the ones it no longer is. */
import type { Store } from '../store/store.ts';

/** Packages being processed by this process; one found PROCESSING_UPLOAD but not here was cut off by a crash. */
export const uploadsInFlight = new Set<string>();

/** Marks packages whose upload died with the process that was receiving it as FAILED (clients upload again). */
export async function failAbandonedUploads(store: Store): Promise<void> {
  const rows = await store.db.selectFrom('packages').select('guid').where('state', '=', 'PROCESSING_UPLOAD').execute();
  const abandoned = rows.map((r) => r.guid).filter((g) => !uploadsInFlight.has(g));
  if (abandoned.length === 0) return;
  await store.write(async (tx) => {
    for (const guid of abandoned) {
      if (uploadsInFlight.has(guid)) continue;
      // Found by the crash sweep, not asked for: status.
      await tx.updateStatus(
        'packages',
        guid,
        { state: 'FAILED', error: 'The upload was interrupted; upload the bits again to a new package.' },
        { where: (eb) => eb('state', '=', 'PROCESSING_UPLOAD') },
      );
    }
  });
}
