// Small formatting helpers shared by the pages.

/** 1536 → "1.5K", in binary units as the cf CLI prints memory and disk. */
export function bytes(n) {
  if (n === undefined || n === null || Number.isNaN(n)) return '–';
  const units = ['B', 'K', 'M', 'G', 'T'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 10 || i === 0 ? Math.round(v) : v.toFixed(1)}${units[i]}`;
}

/** Megabytes as "256M" / "1G". */
export function megabytes(mb) {
  if (mb === undefined || mb === null) return '–';
  return mb >= 1024 && mb % 1024 === 0 ? `${mb / 1024}G` : `${mb}M`;
}

/** Seconds as "3d 4h", "2h 5m", "4m 10s", "12s". */
export function duration(seconds) {
  if (seconds === undefined || seconds === null) return '–';
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

/** CPU as a fraction of one core (log-cache/CC report 0.012 for 1.2%). */
export function percent(fraction) {
  if (fraction === undefined || fraction === null) return '–';
  return `${(fraction * 100).toFixed(1)}%`;
}

/** "5s ago", "3m ago", "2h ago", else the date. */
export function ago(iso) {
  const then = new Date(iso).getTime();
  const s = Math.round((Date.now() - then) / 1000);
  if (s < 60) return `${Math.max(0, s)}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return new Date(iso).toLocaleString();
}

/** A route's URL as a link on this console's own port and scheme (Kiln's router serves apps on the API port). */
export function routeHref(route) {
  const slash = route.url.indexOf('/');
  const host = slash === -1 ? route.url : route.url.slice(0, slash);
  const rest = slash === -1 ? '/' : route.url.slice(slash);
  const port = location.port ? `:${location.port}` : '';
  return `${location.protocol}//${host}${port}${rest}`;
}
