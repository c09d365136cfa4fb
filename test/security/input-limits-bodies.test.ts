import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { startKiln, type RunningKiln } from '../../src/server.ts';

/**
 * Request bodies have limits that hold before the body is read, against a real listening server: a declared
 * Content-Length over the limit is refused at once (the test never sends the body), a chunked body is cut at
 * the limit, and a client that hangs up mid-body is a debug line, not an error with a stack trace.
 */
const JSON_LIMIT = 8 * 1024;
let kiln: RunningKiln;
let port: number;
let token: string;
const logLines: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-limits-'));
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    KILN_DATA_DIR: dataDir,
    DATABASE_URL: 'sqlite::memory:',
    KILN_ADMIN_PASSWORD: 'admin-secret',
    KILN_MAX_JSON_BYTES: String(JSON_LIMIT),
    LOG_LEVEL: 'debug',
  });
  const log = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) });
  kiln = await startKiln(config, { log });
  port = Number(new URL(kiln.url).port);
  token = (await kiln.identity.passwordGrant('admin', 'admin-secret')).access_token;
});

afterAll(async () => {
  await kiln?.stop();
  fs.rmSync(kiln.config.dataDir, { recursive: true, force: true });
});

interface RawReply {
  status: number;
  head: string;
  body: string;
}

/**
 * Writes `head` and then `chunks` on a raw socket and reads until the server answers (and closes, or the
 * deadline passes). `hangUp` closes the socket after the chunks instead of waiting for an answer.
 */
function raw(head: string, chunks: string[], opts: { hangUp?: boolean } = {}): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = '';
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      const [headText = '', ...rest] = received.split('\r\n\r\n');
      resolve({ status: Number(headText.split(' ')[1] ?? 0), head: headText, body: rest.join('\r\n\r\n') });
    };
    const timer = setTimeout(finish, 5_000);
    socket.on('data', (d) => {
      received += d.toString();
      const headEnd = received.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(received)?.[1];
      if (headEnd >= 0 && length !== undefined && received.length >= headEnd + 4 + Number(length)) finish();
    });
    socket.on('end', finish);
    socket.on('error', (err) => (received ? finish() : reject(err)));
    socket.on('connect', () => {
      socket.write(head);
      for (const c of chunks) socket.write(c);
      if (opts.hangUp) setTimeout(finish, 100);
    });
  });
}

const post = (p: string, headers: Record<string, string>) =>
  `POST ${p} HTTP/1.1\r\nHost: localhost\r\nAuthorization: bearer ${token}\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;

const tooLarge = (limit: number) => ({
  errors: [{ title: 'CF-MessageParseError', code: 1001, detail: `Request invalid due to parse error: the request body is larger than ${limit} bytes` }],
});

describe('request body limits', () => {
  it('refuses a declared Content-Length over the JSON limit without reading the body', async () => {
    // 10 GB announced, nothing sent: only a check of the header can answer this.
    const reply = await raw(post('/v3/organizations', { 'Content-Type': 'application/json', 'Content-Length': String(10 * 1024 ** 3) }), []);
    expect(reply.status).toBe(413);
    expect(reply.head.toLowerCase()).toContain('connection: close');
    expect(JSON.parse(reply.body)).toEqual(tooLarge(JSON_LIMIT));
  });

  it('cuts a chunked JSON body off at the limit and creates nothing', async () => {
    const name = 'x'.repeat(JSON_LIMIT);
    const body = JSON.stringify({ name });
    const chunks = [];
    for (let i = 0; i < body.length; i += 1000) {
      const part = body.slice(i, i + 1000);
      chunks.push(`${part.length.toString(16)}\r\n${part}\r\n`);
    }
    chunks.push('0\r\n\r\n');
    const reply = await raw(post('/v3/organizations', { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' }), chunks);
    expect(reply.status).toBe(413);
    expect(JSON.parse(reply.body)).toEqual(tooLarge(JSON_LIMIT));
    expect(await kiln.store.db.selectFrom('organizations').select('name').where('name', '=', name).execute()).toEqual([]);
  });

  it('accepts a JSON body just under the limit', async () => {
    const body = JSON.stringify({ name: 'under-the-limit', metadata: { annotations: { note: 'y'.repeat(4000) } } });
    const reply = await raw(post('/v3/organizations', { 'Content-Type': 'application/json', 'Content-Length': String(body.length) }), [body]);
    expect(reply.status).toBe(201);
  });

  it('limits /oauth/token form bodies to 64 KB', async () => {
    const form = `grant_type=password&username=admin&password=${'p'.repeat(64 * 1024)}`;
    const reply = await raw(
      `POST /oauth/token HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic Y2Y6\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${form.length}\r\n\r\n`,
      [form],
    );
    expect(reply.status).toBe(413);
    expect(JSON.parse(reply.body)).toEqual(tooLarge(64 * 1024));
  });

  it('limits SCIM bodies to 64 KB', async () => {
    const reply = await raw(post('/Users', { 'Content-Type': 'application/json', 'Content-Length': String(65 * 1024) }), []);
    expect(reply.status).toBe(413);
  });

  it('lets a multipart upload past the JSON limit, to be judged by the upload limit', async () => {
    const boundary = 'kilnboundary';
    const filler = 'z'.repeat(JSON_LIMIT * 4);
    const body = `--${boundary}\r\nContent-Disposition: form-data; name="bits"; filename="app.zip"\r\nContent-Type: application/zip\r\n\r\n${filler}\r\n--${boundary}--\r\n`;
    const reply = await raw(
      post('/v3/packages/00000000-0000-4000-8000-000000000000/upload', {
        'Content-Type': `multipart/form-data; boundary=${boundary}`,
        'Content-Length': String(body.length),
      }),
      [body],
    );
    // The package does not exist: the upload route itself answered, not the body limit.
    expect(reply.status).toBe(404);
  });

  it('treats a client that disconnects mid-body as a normal event, not an unhandled error', async () => {
    const before = logLines.length;
    await raw(post('/v3/organizations', { 'Content-Type': 'application/json', 'Content-Length': '1000' }), ['{"name":"half'], { hangUp: true });
    await raw(post('/v3/spaces', { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' }), ['5\r\n{"nam\r\n'], { hangUp: true });
    const deadline = Date.now() + 5_000;
    const closed = () => logLines.slice(before).filter((l) => l.msg === 'client closed the connection before the request was read');
    while (closed().length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(closed().map((l) => l.level)).toEqual([20, 20]);
    const mine = logLines.slice(before);
    expect(mine.filter((l) => (l.level as number) >= 50)).toEqual([]);
    expect(JSON.stringify(mine)).not.toContain('stack');
  });
});
