/** Manifest sizes and log rates: parsing CF units (B, K, KB … TB) and writing them back. */

const UNIT_ERROR = 'must use a supported unit: B, K, KB, M, MB, G, GB, T, or TB';
const UNIT_FACTORS: Record<string, number> = { B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };
const SIZE_RE = /^(\d+(?:\.\d+)?)\s*([BKMGT])B?$/i;

/** Bytes of a size such as `512M`, `1G`, `1.5GB` (case-insensitive); an error phrase when it is not one. */
export function parseByteSize(value: unknown): { bytes?: number; error?: 'not-a-number' | 'unit' | 'negative' } {
  const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : undefined;
  if (text === undefined || !/^-?\d/.test(text)) return { error: 'not-a-number' };
  if (text.startsWith('-')) return { error: 'negative' };
  const m = SIZE_RE.exec(text);
  if (!m) return { error: 'unit' };
  return { bytes: Math.floor(Number(m[1]) * UNIT_FACTORS[m[2]!.toUpperCase()]!) };
}

/** Megabytes of a memory/disk size (whole MB, rounded down), or the CF validation message. */
export function sizeInMb(value: unknown, label: string): { mb?: number; error?: string } {
  const { bytes, error } = parseByteSize(value);
  if (error === 'not-a-number') return { error: `${label} is not a number` };
  if (error === 'unit') return { error: `${label} ${UNIT_ERROR}` };
  const mb = error === 'negative' ? 0 : Math.floor(bytes! / 1024 ** 2);
  if (mb <= 0) return { error: `${label} must be greater than 0MB` };
  if (mb > 2_147_483_647) return { error: `${label} must be less than or equal to 2147483647MB` };
  return { mb };
}

/** Bytes per second of a log rate limit: `-1` is unlimited, `0` silences the app, else a size with a unit. */
export function logRateInBytes(value: unknown): { bytes?: number; error?: string } {
  if (value === -1 || value === '-1') return { bytes: -1 };
  if (value === 0 || value === '0') return { bytes: 0 };
  const { bytes, error } = parseByteSize(value);
  if (error === 'not-a-number') return { error: 'Log rate limit per second is not a number' };
  if (error === 'negative') return { error: 'Log rate limit in bytes per second must be an integer greater than or equal to -1B' };
  if (error === 'unit') return { error: `Log rate limit per second ${UNIT_ERROR}` };
  if (bytes! > Number.MAX_SAFE_INTEGER) return { error: 'Log rate limit in bytes per second is too large' };
  return { bytes };
}

/** `1024` → `1024M`: how manifests render memory and disk. */
export const formatMegabytes = (mb: number) => `${mb}M`;

/** A log rate in the largest unit that divides it evenly (`1K`, `5M`), `-1` unlimited; what generated manifests show. */
export function formatLogRate(bytes: number): string | number {
  if (bytes <= 0) return bytes;
  for (const unit of ['T', 'G', 'M', 'K'] as const) {
    const f = UNIT_FACTORS[unit]!;
    if (bytes % f === 0) return `${bytes / f}${unit}`;
  }
  return `${bytes}B`;
}
