import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LogFifoStock } from '../../src/runtime/local/launch.ts';
import { removeLogFifos } from '../../src/runtime/local/records.ts';
import { afterEachCleanup } from '../helpers/cleanup.ts';

const { tempDir } = afterEachCleanup();

describe('log FIFOs of adoptable instances', () => {
  it('hands out fresh FIFO pairs made in batches, to many instances starting at once', async () => {
    const dir = join(tempDir('kiln-logs-'), 'logs');
    const stock = new LogFifoStock(dir, 8);
    const taken = await Promise.all(Array.from({ length: 20 }, (_, i) => stock.take(`guid-${i}`)));
    expect(taken.every((f) => f !== undefined)).toBe(true);
    for (const [i, fifos] of taken.entries()) {
      expect(fifos).toEqual({ stdout: join(dir, `guid-${i}.stdout`), stderr: join(dir, `guid-${i}.stderr`) });
      expect(statSync(fifos!.stdout).isFIFO()).toBe(true);
      expect(statSync(fifos!.stderr).isFIFO()).toBe(true);
      expect(statSync(fifos!.stdout).mode & 0o777).toBe(0o600);
    }
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    // Three batches of eight for twenty: four spare pairs wait for the next instances.
    expect(readdirSync(dir).filter((f) => f.startsWith('spare-'))).toHaveLength(8);
    for (const fifos of taken) removeLogFifos(fifos!);
    expect(readdirSync(dir).filter((f) => !f.startsWith('spare-'))).toEqual([]);
  });
});
