import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import busboy from 'busboy';
import type { Context } from 'hono';
import { BlobTooLargeError } from '../../blobstore/blobstore.ts';
import { KilnError } from '../../domain/errors.ts';
import { BodyTooLargeError } from '../middleware/body-limit.ts';
import type { Env } from '../context.ts';

export interface ReceivedUpload {
  /** Scratch directory holding the received file; the caller removes it. */
  dir: string;
  /** The file part (named `fileField`) on disk, or null when the request had none. */
  file: string | null;
  /** The client's name for that file (buildpacks record it), or null. */
  filename: string | null;
  fields: Record<string, string>;
}

/**
 * Reads a multipart/form-data body as it arrives: the file part is streamed to a scratch file and cut off
 * (422) once it exceeds `limits.fileBytes`, so a large upload never sits in memory and an oversized one stops
 * being read at the limit. Other file parts are discarded; text fields are kept, each up to `limits.fieldBytes`
 * (the JSON body limit: the only text field CC reads, `resources`, is a JSON list of files the blobstore
 * already holds) — a longer one is the request body over its limit, 413.
 */
export async function receiveMultipart(
  c: Context<Env>,
  workRoot: string,
  fileField: string,
  limits: { fileBytes: number; fieldBytes: number },
): Promise<ReceivedUpload> {
  const maxFileBytes = limits.fileBytes;
  const contentType = c.req.header('content-type') ?? '';
  let parser: busboy.Busboy;
  try {
    parser = busboy({ headers: { 'content-type': contentType }, limits: { fieldSize: limits.fieldBytes, files: 1, fields: 16, parts: 32 } });
  } catch {
    throw new KilnError('MessageParseError', 'invalid multipart body');
  }
  const raw = c.req.raw.body;
  if (!raw) throw new KilnError('MessageParseError', 'empty multipart body');
  const input = Readable.fromWeb(raw as unknown as WebReadableStream<Uint8Array>);
  const dir = await fs.mkdtemp(path.join(workRoot, 'recv-'));
  try {
    return await new Promise<ReceivedUpload>((resolve, reject) => {
      let file: string | null = null;
      let filename: string | null = null;
      const fields: Record<string, string> = {};
      const writes: Array<Promise<void>> = [];
      let failed = false;
      const fail = (err: unknown) => {
        if (failed) return;
        failed = true;
        input.unpipe(parser);
        input.destroy();
        reject(err);
      };
      parser.on('file', (name, stream, info) => {
        if (name !== fileField || file !== null) {
          stream.resume();
          return;
        }
        const target = path.join(dir, 'upload');
        file = target;
        filename = info.filename ?? null;
        let size = 0;
        const limit = async function* (chunks: AsyncIterable<Buffer>) {
          for await (const chunk of chunks) {
            size += chunk.length;
            if (size > maxFileBytes) throw new BlobTooLargeError(maxFileBytes);
            yield chunk;
          }
        };
        writes.push(pipeline(stream, limit, createWriteStream(target, { flags: 'wx' })).catch(fail));
      });
      parser.on('field', (name, value, info) => {
        if (info.valueTruncated) {
          c.header('Connection', 'close');
          fail(new BodyTooLargeError(limits.fieldBytes));
        }
        else fields[name] = value;
      });
      parser.on('error', () => fail(new KilnError('MessageParseError', 'invalid multipart body')));
      parser.on('close', () => {
        void Promise.all(writes).then(() => {
          if (!failed) resolve({ dir, file, filename, fields });
        });
      });
      input.on('error', fail);
      input.pipe(parser);
    });
  } catch (err) {
    await fs.rm(dir, { recursive: true, force: true });
    throw err;
  }
}
