/**
 * Whatever clears an app's buildpack cache (the staging side registers here). With none registered there is no
 * cache to clear and the job completes at once.
 */
export const buildpackCacheClearers: Array<(appGuid: string) => Promise<void>> = [];
