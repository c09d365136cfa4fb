import fs from 'node:fs';
import path from 'node:path';
import type { Api } from '../context.ts';

/** Kiln's OpenAPI document for its extensions of the V3 API (locks, registry credentials…), kept in the repo. */
export const KILN_OPENAPI_PATH = path.resolve(import.meta.dirname, '../../../docs/kiln-openapi.json');

/** `GET /v3/kiln-openapi.json`: the document as stored, without a token (like `GET /v3/info`). */
export function registerKilnOpenApi(app: Api): void {
  let text: string | undefined;
  app.get('/v3/kiln-openapi.json', (c) => {
    text ??= fs.readFileSync(KILN_OPENAPI_PATH, 'utf8');
    return c.body(text, 200, { 'Content-Type': 'application/json' });
  });
}
