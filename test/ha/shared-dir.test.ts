import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { adoptDataDirKeys } from '../../src/ha/shared-dir.ts';

describe('KILN_SHARED_DIR set on an existing installation', () => {
  it("copies the data dir's generated keys into the shared dir, never over a shared key", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-shared-adopt-'));
    const data = path.join(root, 'data');
    const shared = path.join(root, 'shared');
    fs.mkdirSync(path.join(data, 'identity'), { recursive: true });
    fs.mkdirSync(path.join(data, 'blobs', 'packages'), { recursive: true });
    fs.writeFileSync(path.join(data, 'encryption-key'), 'old-key');
    fs.writeFileSync(path.join(data, 'identity', 'signing-key.json'), '{"kid":"old"}');
    fs.mkdirSync(shared);
    fs.writeFileSync(path.join(shared, 'encryption-key'), 'already-shared');
    const warnings: string[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void warnings.push(line) });
    adoptDataDirKeys(data, shared, log);
    expect(fs.readFileSync(path.join(shared, 'encryption-key'), 'utf8')).toBe('already-shared');
    expect(fs.readFileSync(path.join(shared, 'identity', 'signing-key.json'), 'utf8')).toBe('{"kid":"old"}');
    expect(fs.statSync(path.join(shared, 'identity', 'signing-key.json')).mode & 0o777).toBe(0o600);
    expect(warnings.some((l) => l.includes('move them into the shared dir'))).toBe(true);
    // Same dir: nothing to do.
    adoptDataDirKeys(data, data, log);
    fs.rmSync(root, { recursive: true, force: true });
  });
});
