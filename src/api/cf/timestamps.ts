/** CF renders timestamps as `YYYY-MM-DDThh:mm:ssZ`: UTC, no fractional seconds. */
export function cfTime(iso: string): string;
export function cfTime(iso: string | null): string | null;
export function cfTime(iso: string | null): string | null {
  if (iso === null) return null;
  return `${iso.slice(0, 19)}Z`;
}
