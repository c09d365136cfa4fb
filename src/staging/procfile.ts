/**
 * Parses a Procfile (`type: command` per line, `#` comments) into process types. Later duplicates win, as
 * in Cloud Foundry's launcher.
 */
export function parseProcfile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z0-9_-]+)\s*:\s*(.*)$/.exec(line);
    if (m && m[2]!.trim() !== '') out[m[1]!] = m[2]!.trim();
  }
  return out;
}
