/**
 * Node's own HTTP/1.1 parser (llhttp, the one node's http server and client run), reached the way node's http
 * modules reach it: through `_http_common`. The router uses it where node's http objects cost more than the
 * parsing (backend-pool.ts for responses, fast-path.ts for request heads). Only the calls node itself makes are
 * used: initialize, execute, finish, free and the callback slots.
 */
import { createRequire } from 'node:module';

export interface LlhttpParser {
  /** `maxHeaderSize` 0 means node's default (--max-http-header-size); `lenient` 0 is strict parsing. */
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  /** Bytes consumed, or an Error with `code` (HPE_*) and `bytesParsed`. */
  execute(data: Buffer): number | Error;
  finish(): Error | undefined;
  free(): void;
  [callback: number]: unknown;
}

export interface LlhttpParserClass {
  new (): LlhttpParser;
  REQUEST: number;
  RESPONSE: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
}

const common = createRequire(import.meta.url)('_http_common') as { HTTPParser: LlhttpParserClass; methods: string[] };

export const HTTPParser = common.HTTPParser;
/** Method names by llhttp's method number (what a request's headers-complete callback receives). */
export const METHODS: readonly string[] = common.methods;

/** Return value of headers-complete that stops parsing right after the head (llhttp treats it like an upgrade). */
export const STOP_AFTER_HEAD = 2;
/** Return value of headers-complete for a message without a body whatever its headers say (a HEAD response). */
export const SKIP_BODY = 1;
