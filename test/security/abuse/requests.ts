import fs from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import type { Kiln } from '../../../src/server.ts';
import { openApiProblems } from '../../helpers/openapi.ts';

export interface Reply {
  status: number;
  text: string;
  body: any;
  /** Problems of the response against openapi.json (errors must be CF error documents). */
  specProblems: string[];
}

/** A body as sent: JSON (any value), raw text with a content type, or multipart fields (with a `bits` file). */
export type Body =
  | { kind: 'json'; value: unknown }
  | { kind: 'raw'; text: string; contentType: string }
  | { kind: 'multipart'; fields: Record<string, string>; file?: Uint8Array };

/** Sends one request through `app.request()` (in-process, no socket), as the holder of `token`. */
export async function send(kiln: Kiln, token: string | undefined, method: string, url: string, body?: Body): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `bearer ${token}`;
  const init: RequestInit = { method, headers };
  if (body?.kind === 'json') {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body.value);
  } else if (body?.kind === 'raw') {
    headers['content-type'] = body.contentType;
    init.body = body.text;
  } else if (body?.kind === 'multipart') {
    const form = new FormData();
    for (const [k, v] of Object.entries(body.fields)) form.append(k, v);
    if (body.file) form.append('bits', new Blob([body.file as Uint8Array<ArrayBuffer>], { type: 'application/zip' }), 'app.zip');
    init.body = form;
  }
  const res = await kiln.app.request(`http://kiln.test${url}`, init);
  const text = await res.text();
  let parsed: unknown = text;
  if ((res.headers.get('content-type') ?? '').includes('json') && text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  return { status: res.status, text, body: parsed, specProblems: openApiProblems(method, url, res.status, parsed === '' ? undefined : parsed) };
}

/** The first CF error of a reply, as `status title code`, or just the status for a success. */
export function outcome(r: Reply): string {
  const e = r.body?.errors?.[0];
  return e ? `${r.status} ${e.title} ${e.code}` : String(r.status);
}

/**
 * Everything Kiln holds for a tenant, as one comparable string: every row of every table (ordered), and the
 * files under the data directory (blobs, droplets, scratch). Two equal snapshots mean a request changed nothing.
 */
export async function snapshot(kiln: Kiln): Promise<string> {
  const db = kiln.store.db;
  const tables = (await db.introspection.getTables()).map((t) => t.name).filter((n) => !n.startsWith('kysely_')).sort();
  const parts: string[] = [];
  for (const table of tables) {
    const rows = await sql<Record<string, unknown>>`select * from ${sql.table(table)}`.execute(db);
    parts.push(`${table}:${rows.rows.map((r) => JSON.stringify(r)).sort().join('\n')}`);
  }
  const files = fs.existsSync(kiln.config.dataDir)
    ? (fs.readdirSync(kiln.config.dataDir, { recursive: true, withFileTypes: true }) as fs.Dirent[])
        .filter((e) => e.isFile() && !/\.(db|db-wal|db-shm)$/.test(e.name))
        .map((e) => `${path.relative(kiln.config.dataDir, path.join(e.parentPath, e.name))}:${fs.statSync(path.join(e.parentPath, e.name)).size}`)
        .sort()
    : [];
  parts.push(`files:${files.join('\n')}`);
  return parts.join('\n\n');
}

/** The first line where two snapshots differ, with its table, to say what a request changed. */
export function firstDifference(before: string, after: string): string {
  const a = before.split('\n');
  const b = after.split('\n');
  let table = '';
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const m = /^([a-z_]+):/.exec(a[i] ?? '');
    if (m && (a[i - 1] === '' || i === 0)) table = m[1]!;
    if (a[i] !== b[i]) return `${table}: before ${(a[i] ?? '(none)').slice(0, 300)} / after ${(b[i] ?? '(none)').slice(0, 300)}`;
  }
  return '';
}
